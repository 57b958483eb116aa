// The playground page: renders what the Slack emulator holds for the person you act as, and turns what you do
// into calls to the playground's JSON API (each one becomes a signed Slack request to the real bot).
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  user: localStorage.getItem("playground.user") || "U_ASKER",
  place: "C_GENERAL", // a channel id, "dm" (your DM with the bot) or "home"
  thread: null,
  version: -1,
  state: null,
  abort: null,
  seen: JSON.parse(localStorage.getItem("playground.seen") || "{}"),
  rendered: {},
  modalKey: null,
  modalInputs: [],
};

// Slack's emoji shortcodes (`:hourglass_flowing_sand:` → ⏳): static/emoji.json, built from iamcal/emoji-data (the
// data behind Slack's own names) by bot/playground/emoji_table.py; loaded before the first render.
let EMOJI = {};

// --- Slack mrkdwn → HTML ---------------------------------------------------------------------------------

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const unslack = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
const emojify = (html) => html.replace(/:([a-z0-9_+-]+):/g, (all, name) => EMOJI[name] || all);
const PERMALINK = /^https:\/\/[^/]+\.slack\.com\/archives\/([A-Z0-9_]+)\/p(\d+)(\d{6})(?:\?thread_ts=([\d.]+))?/;

function token(inner) {
  const [target, label] = inner.split(/\|(.*)/s);
  const names = ui.state.names, channels = ui.state.channel_names;
  if (target.startsWith("@")) return `<span class="mention">@${esc(names[target.slice(1)] || label || target.slice(1))}</span>`;
  if (target.startsWith("#")) {
    const id = target.slice(1);
    return `<a href="#" class="mention" data-goto="${esc(id)}">#${esc(channels[id] || label || id)}</a>`;
  }
  if (target.startsWith("!")) {
    const word = label || "@" + target.slice(1).split("^")[0];
    return `<span class="mention broadcast">${esc(word)}</span>`;
  }
  if (/^(https?:|mailto:)/.test(target)) {
    const link = PERMALINK.exec(target);
    const data = link ? ` data-goto="${esc(link[1])}" data-ts="${link[2]}.${link[3]}" data-thread="${esc(link[4] || "")}"` : "";
    return `<a href="${esc(target)}" target="_blank" rel="noopener"${data}>${esc(label || target)}</a>`;
  }
  return esc(label || target);
}

function mrkdwn(text) {
  const held = [];
  const hold = (html) => `\u0001${held.push(html) - 1}\u0002`;
  let s = String(text ?? "");
  s = s.replace(/```([\s\S]*?)```/g, (_, code) => hold(`<pre>${esc(unslack(code).replace(/^\n/, ""))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${esc(unslack(code))}</code>`));
  s = s.replace(/<([^<>\n]+)>/g, (_, inner) => hold(token(inner)));
  s = esc(unslack(s));
  s = s.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?!\w)/g, "$1<b>$2</b>");
  s = s.replace(/(^|[^\w_])_(?!\s)([^_\n]+?)_(?!\w)/g, "$1<i>$2</i>");
  s = s.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?!\w)/g, "$1<s>$2</s>");
  s = s.split("\n").map((line) => (line.startsWith("&gt;") ? `<blockquote>${line.replace(/^&gt;\s?/, "")}</blockquote>` : line)).join("\n");
  s = emojify(s).replace(/\n/g, "<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
  return s.replace(/\u0001(\d+)\u0002/g, (_, i) => held[Number(i)]);
}

const textHtml = (obj) => (!obj ? "" : obj.type === "mrkdwn" ? mrkdwn(obj.text) : emojify(esc(obj.text)));

// --- small DOM helpers -----------------------------------------------------------------------------------

function el(tag, className, html) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (html !== undefined) node.innerHTML = html;
  return node;
}

function button(label, className, onClick) {
  const node = el("button", className);
  node.type = "button";
  node.innerHTML = label;
  node.addEventListener("click", onClick);
  return node;
}

function toast(message, kind = "error") {
  const node = el("div", `toast ${kind}`);
  node.textContent = message;
  $("toasts").append(node);
  setTimeout(() => node.remove(), 6000);
}

const me = () => ui.state.people.find((p) => p.id === ui.user);
function fmtTime(ts) {
  // In the viewer's time zone, as Slack shows it; with the day when it was not today (on the bot's clock).
  const day = (date) => date.toLocaleDateString("en-GB", { timeZone: me().tz, weekday: "short", day: "numeric", month: "short" });
  const when = new Date(Number(ts) * 1000);
  const time = when.toLocaleTimeString("en-GB", { timeZone: me().tz, hour: "2-digit", minute: "2-digit" });
  return day(when) === day(new Date(ui.state.now)) ? time : `${day(when)}, ${time}`;
}
const initials = (name) => name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();

// --- the API ---------------------------------------------------------------------------------------------

async function api(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const result = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) toast(result.error || `HTTP ${response.status}`);
  else if (typeof result.status === "number" && result.status !== 200) toast(`The bot answered HTTP ${result.status}`);
  refresh();
  return response.ok ? result : null;
}

function refresh() {
  ui.version = -1;
  if (ui.abort) ui.abort.abort();
}

async function poll() {
  for (;;) {
    ui.abort = new AbortController();
    const query = new URLSearchParams({ user: ui.user, channel: ui.place === "home" ? "dm" : ui.place });
    if (ui.thread) query.set("thread", ui.thread);
    if (ui.version >= 0) query.set("since", ui.version);
    try {
      const response = await fetch(`/api/state?${query}`, { signal: ui.abort.signal });
      if (response.status === 400) ui.user = "U_ASKER"; // a remembered person this playground does not have
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const state = await response.json();
      ui.version = state.version;
      render(state);
      document.body.classList.remove("offline");
    } catch (error) {
      if (error.name !== "AbortError") {
        document.body.classList.add("offline");
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}

function go(place, thread = null) {
  ui.place = place;
  ui.thread = thread;
  ui.rendered = {};
  if (place === "home") api("/api/home", { user: ui.user }); // Slack sends app_home_opened
  refresh();
}

// --- rendering -------------------------------------------------------------------------------------------

function changed(part, value) {
  const key = JSON.stringify(value);
  if (ui.rendered[part] === key) return false;
  ui.rendered[part] = key;
  return true;
}

function render(state) {
  ui.state = state;
  const visible = state.channels.some((c) => c.id === ui.place) || ["dm", "home"].includes(ui.place);
  if (!visible) return go("C_GENERAL");
  const when = { timeZone: "UTC", weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  $("clock").textContent = `🕘 ${new Date(state.now).toLocaleString("en-GB", when)} UTC`;
  renderPlace(); // first: it marks what you are looking at as seen
  if (changed("people", [state.people, ui.user, ui.seen])) renderPeople();
  if (changed("sidebar", [state.channels, state.dm, ui.place, ui.seen])) renderSidebar();
  renderModal();
  if (changed("contract", state.violations)) renderContract();
}

function renderPeople() {
  const box = $("people");
  box.replaceChildren();
  for (const person of ui.state.people) {
    const unread = person.dm_latest && person.dm_latest > (ui.seen[`${person.id}:dm`] || "");
    const city = person.tz.split("/").pop().replace(/_/g, " ");
    const label =
      `<span class="avatar">${initials(person.real_name)}</span><span><b>${esc(person.real_name)}</b>` +
      `${unread ? '<span class="badge" title="New DM from the bot">DM</span>' : ""}<br>` +
      `<small>${esc(person.role)} · ${esc(city)} ${esc(person.local_time)} ${person.working_hours ? "☀️" : "🌙"}</small></span>`;
    const node = button(label, `person${person.id === ui.user ? " active" : ""}`, () => {
      ui.user = person.id;
      localStorage.setItem("playground.user", ui.user);
      ui.thread = null;
      ui.rendered = {};
      if (ui.place === "home") go("home");
      refresh();
    });
    node.dataset.user = person.id;
    node.setAttribute("role", "radio");
    node.setAttribute("aria-checked", String(person.id === ui.user));
    box.append(node);
  }
}

function renderSidebar() {
  const list = $("channels");
  list.replaceChildren();
  for (const channel of ui.state.channels) {
    const unread = channel.latest && channel.latest > (ui.seen[`${ui.user}:${channel.id}`] || "");
    const node = button(`${channel.private ? "🔒" : "#"} ${esc(channel.name)}${unread ? ' <span class="dot">•</span>' : ""}`, "place", () => go(channel.id));
    node.dataset.place = channel.id;
    const item = el("li");
    item.append(node);
    list.append(item);
  }
  const dmUnread = ui.state.dm.latest && ui.state.dm.latest > (ui.seen[`${ui.user}:dm`] || "");
  $("go-dm").innerHTML = `💬 PeerLearn: Messages${dmUnread ? ' <span class="dot">•</span>' : ""}`;
  for (const node of document.querySelectorAll(".place")) node.classList.toggle("active", node.dataset.place === ui.place);
}

function markSeen(key, latest) {
  if (latest && ui.seen[key] !== latest) {
    ui.seen[key] = latest;
    localStorage.setItem("playground.seen", JSON.stringify(ui.seen));
  }
}

function renderPlace() {
  const state = ui.state, view = state.view;
  const home = ui.place === "home";
  $("home").hidden = !home;
  $("messages").hidden = home;
  $("composer").hidden = home;
  $("digest").hidden = home || ui.place === "dm";
  if (home) {
    $("title").textContent = "PeerLearn";
    $("subtitle").textContent = "Home";
    if (changed("home", state.home)) {
      const box = $("home");
      box.replaceChildren(state.home ? renderBlocks(state.home.blocks, { view_id: state.home.id }) : el("p", "muted", "Opening the Home tab…"));
    }
  } else if (view) {
    const channel = view.channel;
    $("title").textContent = channel.im ? "PeerLearn" : `${channel.private ? "🔒" : "#"} ${channel.name}`;
    $("subtitle").textContent = channel.im ? "Messages from the bot (read-only; slash commands work here)" : channel.private ? "private channel" : "";
    $("text").placeholder = channel.im ? "/ask … or /teach … (the bot's Messages tab is read-only)" : `Message #${channel.name}, or /ask How do I … #postgres`;
    if (changed("messages", [view, ui.user])) {
      const box = $("messages");
      box.replaceChildren(...timeline(view.messages, view.ephemerals, channel, false));
      if (!view.messages.length && !view.ephemerals.length) box.append(el("p", "muted", "Nothing here yet."));
      box.scrollTop = box.scrollHeight;
    }
    markSeen(`${ui.user}:${channel.im ? "dm" : channel.id}`, channel.im ? state.dm.latest : (state.channels.find((c) => c.id === channel.id) || {}).latest);
  }
  $("thread").hidden = !(state.thread && view);
  if (state.thread && view && changed("thread", [state.thread, ui.user])) {
    const box = $("thread-messages");
    box.replaceChildren(...timeline(state.thread.messages, state.thread.ephemerals, view.channel, true));
    box.scrollTop = box.scrollHeight;
  }
}

function timeline(messages, ephemerals, channel, inThread) {
  const items = [...messages.map((m) => ({ m, ephemeral: false })), ...ephemerals.map((m) => ({ m, ephemeral: true }))];
  items.sort((a, b) => Number(a.m.ts) - Number(b.m.ts));
  return items.map(({ m, ephemeral }) => messageNode(m, channel, inThread, ephemeral));
}

function messageNode(m, place, inThread, ephemeral) {
  const channel = place.id;
  const bot = ephemeral || Boolean(m.bot_id);
  const author = bot ? "PeerLearn" : ui.state.names[m.user] || m.user;
  const node = el("div", `msg${ephemeral ? " ephemeral" : ""}${bot ? " bot" : ""}`);
  node.dataset.ts = m.ts;
  const body = el("div", "msg-body");
  node.append(el("div", "avatar", bot ? "PL" : initials(author)), body);
  body.append(
    el("div", "msg-head", `<b>${esc(author)}</b>${bot ? ' <span class="app-tag">APP</span>' : ""} <span class="time">${fmtTime(m.ts)}</span>` +
      `${m.edited ? ' <span class="muted">(edited)</span>' : ""}${ephemeral ? ' <span class="muted">· Only visible to you</span>' : ""}`),
  );
  const blocks = (m.blocks || []).filter((b) => b.type !== "rich_text");
  const surface = { channel, message_ts: m.ts };
  body.append(blocks.length ? renderBlocks(blocks, surface) : el("div", "bk-text", mrkdwn(m.text)));
  if (!ephemeral) {
    const reactions = el("div", "reactions");
    for (const r of m.reactions || []) {
      const pill = button(`${EMOJI[r.name] || `:${r.name}:`} ${r.count}`, `pill${r.users.includes(ui.user) ? " mine" : ""}`, () => react(channel, m.ts, r.name));
      pill.dataset.reaction = r.name;
      pill.title = r.users.map((u) => ui.state.names[u] || u).join(", ");
      reactions.append(pill);
    }
    body.append(reactions);
    if (!inThread && m.reply_count) {
      body.append(button(`💬 ${m.reply_count} ${m.reply_count === 1 ? "reply" : "replies"}`, "replies", () => go(ui.place, m.ts)));
    }
    const bar = el("div", "msg-actions");
    for (const name of ui.state.reactions) {
      const add = button(EMOJI[name] || `:${name}:`, "react", () => react(channel, m.ts, name));
      add.dataset.reaction = name;
      add.title = `React with :${name}:`;
      bar.append(add);
    }
    if (!inThread && !place.im) bar.append(button("💬 Reply in thread", "reply", () => go(ui.place, m.ts)));
    for (const s of place.im ? [] : ui.state.shortcuts || []) {  // the message's "More actions" menu
      const item = button(`⋮ ${s.name}`, "shortcut", () => api("/api/shortcut", { user: ui.user, channel, ts: m.ts, callback_id: s.callback_id }));
      item.dataset.shortcut = s.callback_id;
      bar.append(item);
    }
    node.append(bar);
  }
  return node;
}

const react = (channel, ts, reaction) => api("/api/react", { user: ui.user, channel, ts, reaction });

// --- Block Kit -------------------------------------------------------------------------------------------

function renderBlocks(blocks, surface) {
  const root = el("div", "blocks");
  for (const block of blocks || []) root.append(renderBlock(block, surface));
  return root;
}

function renderBlock(b, surface) {
  switch (b.type) {
    case "section": {
      const node = el("div", "bk-section");
      const main = el("div", "bk-main");
      if (b.text) main.append(el("div", "bk-text", textHtml(b.text)));
      if (b.fields) {
        const fields = el("div", "bk-fields");
        for (const f of b.fields) fields.append(el("div", "bk-text", textHtml(f)));
        main.append(fields);
      }
      node.append(main);
      if (b.accessory) node.append(renderElement(b.accessory, surface));
      return node;
    }
    case "header":
      return el("div", "bk-header", textHtml(b.text));
    case "divider":
      return el("hr", "bk-divider");
    case "context": {
      const node = el("div", "bk-context");
      for (const e of b.elements || []) node.append(e.type === "image" ? el("span", "", "🖼") : el("span", "", textHtml(e)));
      return node;
    }
    case "actions": {
      const node = el("div", "bk-actions");
      for (const e of b.elements || []) node.append(renderElement(e, surface));
      return node;
    }
    case "image":
      return el("div", "bk-context", `🖼 ${esc(b.alt_text || "image")}`);
    case "input":
      return renderInput(b);
    default:
      return el("div", "bk-context", `[${esc(b.type)} block]`);
  }
}

function options(e) {
  const all = [...(e.options || [])];
  for (const group of e.option_groups || []) all.push(...group.options);
  return all.map((o) => ({ value: o.value, label: o.text.text }));
}

function choices(e) {
  if (/users_select$/.test(e.type)) return ui.state.people.map((p) => ({ value: p.id, label: p.real_name }));
  if (/(conversations|channels)_select$/.test(e.type)) return ui.state.channels.map((c) => ({ value: c.id, label: `${c.private ? "🔒" : "#"} ${c.name}` }));
  return options(e);
}

function selectNode(e, multiple, initial) {
  const node = el("select", "bk-select");
  node.multiple = multiple;
  if (!multiple) node.append(new Option(e.placeholder ? e.placeholder.text : "Choose…", ""));
  for (const c of choices(e)) node.append(new Option(c.label, c.value, false, [].concat(initial ?? []).includes(c.value)));
  return node;
}

function initialOf(e) {
  if (e.initial_option) return e.initial_option.value;
  if (e.initial_options) return e.initial_options.map((o) => o.value);
  const key = Object.keys(e).find((k) => k.startsWith("initial_") && e[k]);
  if (key) return e[key];
  if (e.default_to_current_conversation && ui.place !== "dm" && ui.place !== "home") return ui.place;
  return undefined;
}

function renderElement(e, surface) {
  const act = (value) => api("/api/click", { user: ui.user, action_id: e.action_id, value, ...surface });
  if (e.type === "button") {
    const node = button(textHtml(e.text), `bk-button ${e.style || ""}`, (event) => {
      if (e.confirm && !window.confirm(`${e.confirm.title?.text || ""}\n${e.confirm.text?.text || ""}`)) return;
      if (e.url) follow(e.url, event);
      act(e.value);
    });
    node.dataset.actionId = e.action_id;
    return node;
  }
  if (e.type === "image") return el("span", "", "🖼");
  if (e.type === "datepicker" || e.type === "timepicker") {
    const node = el("input", "bk-select");
    node.type = e.type === "datepicker" ? "date" : "time";
    node.value = initialOf(e) || "";
    node.addEventListener("change", () => act(node.value));
    return node;
  }
  if (e.type === "checkboxes") {
    // As Slack's client: each tick or untick sends every box ticked at that moment.
    const node = el("div", "bk-checks"), ticked = [].concat(initialOf(e) ?? []);
    for (const o of options(e)) {
      node.append(el("label", "", `<input type="checkbox" value="${esc(o.value)}"${ticked.includes(o.value) ? " checked" : ""}> ${emojify(esc(o.label))}`));
    }
    node.dataset.actionId = e.action_id;
    node.addEventListener("change", () => act([...node.querySelectorAll("input:checked")].map((c) => c.value)));
    return node;
  }
  if (/select$|^overflow$|^radio_buttons$/.test(e.type) && !e.type.startsWith("multi_")) {
    const node = selectNode(e.type === "overflow" ? { ...e, placeholder: { text: "⋯" } } : e, false, initialOf(e));
    node.dataset.actionId = e.action_id;
    node.addEventListener("change", () => node.value && act(node.value));
    return node;
  }
  return el("span", "bk-context", `[${esc(e.type)}]`);
}

function renderInput(b) {
  const e = b.element, initial = initialOf(e);
  const node = el("label", "bk-input");
  node.append(el("span", "bk-label", `${textHtml(b.label)}${b.optional ? ' <span class="muted">(optional)</span>' : ""}`));
  let control, get;
  if (/text_input$|^number_input$/.test(e.type)) {
    control = el(e.multiline ? "textarea" : "input", "bk-field");
    if (e.type === "number_input") control.type = "number";
    control.value = initial ?? "";
    control.placeholder = e.placeholder ? e.placeholder.text : "";
    get = () => control.value;
  } else if (e.type === "checkboxes") {
    control = el("div", "bk-checks");
    for (const o of options(e)) {
      const line = el("label", "", `<input type="checkbox" value="${esc(o.value)}"${[].concat(initial ?? []).includes(o.value) ? " checked" : ""}> ${emojify(esc(o.label))}`);
      control.append(line);
    }
    get = () => [...control.querySelectorAll("input:checked")].map((c) => c.value);
  } else if (e.type === "datepicker" || e.type === "timepicker") {
    control = el("input", "bk-field");
    control.type = e.type === "datepicker" ? "date" : "time";
    control.value = initial ?? "";
    get = () => control.value;
  } else {
    const multiple = e.type.startsWith("multi_");
    control = selectNode(e, multiple, initial);
    get = () => (multiple ? [...control.selectedOptions].map((o) => o.value) : control.value);
  }
  control.name = b.block_id;
  node.append(control);
  if (b.hint) node.append(el("span", "muted", textHtml(b.hint)));
  const error = el("span", "bk-error");
  error.dataset.errorFor = b.block_id;
  node.append(error);
  ui.modalInputs.push({ block: b.block_id, action: e.action_id, get });
  return node;
}

// --- modals ----------------------------------------------------------------------------------------------

function renderModal() {
  const view = ui.state.modal, overlay = $("modal");
  const key = view ? `${view.id}:${view.hash}` : null;
  if (key === ui.modalKey) return;
  ui.modalKey = key;
  overlay.hidden = !view;
  overlay.replaceChildren();
  if (!view) return;
  ui.modalInputs = [];
  const dialog = el("form", "modal");
  dialog.setAttribute("role", "dialog");
  dialog.append(el("div", "modal-head", `<h2>${textHtml(view.title)}</h2>`));
  dialog.querySelector(".modal-head").append(button("✕", "close", () => close(view)));
  dialog.append(renderBlocks(view.blocks, { view_id: view.id }));
  const foot = el("div", "modal-foot");
  foot.append(button(view.close ? textHtml(view.close) : "Cancel", "bk-button", () => close(view)));
  if (view.submit) {
    const submit = button(textHtml(view.submit), "bk-button primary", () => {});
    submit.type = "submit";
    foot.append(submit);
  }
  dialog.append(foot);
  dialog.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {};
    for (const input of ui.modalInputs) {
      const value = input.get();
      if (value !== "" && !(Array.isArray(value) && !value.length)) values[input.block] = { [input.action]: value };
    }
    const result = await api("/api/submit", { user: ui.user, view_id: view.id, values });
    // Field errors show under their field, as in Slack: the bot's (response_action "errors") or, for a required
    // field left empty, the client's own.
    const ack = result && result.ack;
    const errors = (result && result.errors) || (ack && ack.response_action === "errors" ? ack.errors : {});
    for (const slot of dialog.querySelectorAll(".bk-error")) slot.textContent = errors[slot.dataset.errorFor] || "";
  });
  overlay.append(dialog);
}

const close = (view) => api("/api/close", { user: ui.user, view_id: view.id });

function renderContract() {
  const list = ui.state.violations, footer = $("contract");
  footer.className = `contract${list.length ? " bad" : ""}`;
  footer.innerHTML = list.length
    ? `⚠️ The bot broke Slack's contract ${ui.state.violation_count} time(s) (see the log): ${list.map(esc).join(" · ")}`
    : "✓ Every Web API call the bot made so far passed the emulator's Slack contract checks.";
}

// --- links and the composer ------------------------------------------------------------------------------

function follow(url, event) {
  const link = PERMALINK.exec(url);
  if (!link) return; // an outside link: the browser opens it
  if (event) event.preventDefault();
  const channel = link[1], ts = `${link[2]}.${link[3]}`;
  if (channel === ui.state.dm.id) return go("dm");
  if (!ui.state.channels.some((c) => c.id === channel)) return toast("You can't see that channel.");
  go(channel, link[4] || ts);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-goto]");
  if (!link) return;
  event.preventDefault();
  if (link.dataset.ts) follow(link.href, event);
  else if (ui.state.channels.some((c) => c.id === link.dataset.goto)) go(link.dataset.goto);
});

function composer(form, textarea, thread) {
  const send = async () => {
    const text = textarea.value.trim();
    if (!text) return;
    const result = await api("/api/send", { user: ui.user, channel: ui.place, text, thread_ts: thread ? ui.thread : null });
    if (result) textarea.value = "";
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  });
}

composer($("composer"), $("text"), false);
composer($("thread-composer"), $("thread-text"), true);
$("close-thread").addEventListener("click", () => go(ui.place));
$("go-home").addEventListener("click", () => go("home"));
$("go-dm").addEventListener("click", () => go("dm"));
$("digest").addEventListener("click", async () => {
  const result = await api("/api/digest", { channel: ui.place });
  if (result && result.ok) toast("The digest was posted in this channel.", "info");
  else if (result) toast(`No digest posted: ${result.error || result.outcome}`);
});
for (const node of document.querySelectorAll("[data-travel]")) {
  node.addEventListener("click", () => api("/api/travel", { hours: Number(node.dataset.travel) }));
}
fetch("/emoji.json")
  .then((answer) => answer.json())
  .then((table) => { EMOJI = table.emoji; })
  .catch(() => toast("Emoji could not be loaded: they show as :shortcodes:."))
  .finally(poll);
