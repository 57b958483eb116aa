"""PeerLearn in-process against the Slack emulator (bot/playground/emulator): the world behind the page.

Whatever a person does on the page goes through SlackWorld, as in the scenario tests: a signed request into
the bot's real HTTP endpoint (on waitress), and the bot answers through its own WebClient into the emulator's
Web API. Nothing here calls the bot's handlers. The one other way in is the admin path an operator would use:
"post digest now" runs what the `digest` verb runs.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.clock import Clock, FrozenClock
from bot.config import Settings
from bot.playground.emulator.contract import Problem
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import Response, user_ref
from bot.playground.emulator.workspace import APP_ID, TEAM_DOMAIN, TEAM_ID, Json, SlackError
from bot.playground.emulator.world import SlackWorld
from bot.routing.evidence import PersonFacts
from bot.routing.planner import availability_of, is_within_working_hours
from bot.runtime.http import HttpServer
from bot.runtime.wiring import Runtime, build_runtime, serve_in_thread
from bot.workspace_settings import effective_settings
from models.expert import Person as StoredPerson

logger = logging.getLogger("peerlearn.playground")

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    real_name: str
    tz: str
    role: str
    teaches: str = ""  # what they declare with /teach when the playground starts
    is_admin: bool = False  # a workspace admin: App Home shows them the settings and the analytics


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    private: bool
    members: tuple[str, ...]


PEOPLE = (
    Person("U_ASKER", "ana", "Ana Asker", "Europe/London", "asker"),
    Person("U_BERLIN", "bruno", "Bruno Berg", "Europe/Berlin", "expert", "#postgres #kubernetes"),
    Person("U_NEWYORK", "maya", "Maya Ortiz", "America/New_York", "expert, admin", "#postgres #python", is_admin=True),
    Person("U_NEWCOMER", "nico", "Nico Neu", "Asia/Tokyo", "newcomer"),
)
EVERYONE = tuple(person.id for person in PEOPLE)
PLACES = (
    Place("C_GENERAL", "general", False, EVERYONE),
    Place("C_ENGINEERING", "engineering", False, EVERYONE),
    Place("G_LEADS", "leads", True, ("U_ASKER", "U_BERLIN")),
    Place("C_WELCOME", "welcome", False, EVERYONE),  # the onboarding channel (Maya names it at start)
)
SEED_SESSION = "session #postgres Vacuum without tears tomorrow 12:30"
MAX_MESSAGES = 200  # per channel or thread in one state answer
REQUIRED_FIELD = "Please complete this required field."  # what Slack's client says under an empty one
RECENT_VIOLATIONS = 20


class PlaygroundError(Exception):
    """What a person tried can't be done (Slack would not let them); the message says why."""


class TravelClock(Clock):
    """Wall-clock time that the page can move forward ("time travel"), to see scheduled work happen."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


class PlaygroundSlack(FakeSlackAPI):
    """The emulator as the playground runs it: a contract violation by the bot is logged (and shown on the
    page) instead of failing a test at the end. Slack's own refusals are still answered as Slack would."""

    def _record(self, method: str, args: Json, problems: list[Problem]) -> None:
        super()._record(method, args, problems)
        for problem in problems:
            logger.warning("Slack contract violation: %s: %s: %s", method, problem.error, problem.reason)


@contextmanager
def _quiet() -> Iterator[None]:
    """PeerLearn's own INFO lines held back (warnings still show) while the block runs."""
    peerlearn = logging.getLogger("peerlearn")
    level = peerlearn.level
    peerlearn.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        peerlearn.setLevel(level)


def manifest_commands(path: Path = ROOT / "manifest.yml") -> set[str]:
    """The slash commands the app declares (Slack knows no others)."""
    try:
        return set(re.findall(r"^\s*- command:\s*(/\S+)", path.read_text(encoding="utf-8"), re.MULTILINE))
    except OSError:
        return {"/ask", "/teach"}


def manifest_shortcuts(path: Path = ROOT / "manifest.yml") -> list[dict[str, str]]:
    """The message shortcuts the app declares (name and callback_id), in the manifest's order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    found = re.findall(r"^\s*- name:\s*(.+?)\s*\n\s*type:\s*message\s*\n\s*callback_id:\s*(\S+)", text, re.MULTILINE)
    return [{"name": name, "callback_id": callback_id} for name, callback_id in found]


# A thread already in #engineering when the playground starts, to try the message shortcuts on.
SEEDED_THREAD = (
    ("U_NEWCOMER", "What's the fastest way to find which commit broke a test?"),
    ("U_BERLIN", "`git bisect`: mark one good and one bad commit, and git walks you to the culprit."),
    ("U_NEWYORK", "And `git bisect run pytest tests/test_x.py` does the walking for you."),
)


class Playground:
    """The emulator, PeerLearn on waitress against it, and the people and channels of a small workspace."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: TravelClock | FrozenClock | None = None,
        scheduler: bool = True,
    ) -> None:
        self.clock = clock or TravelClock()
        self.fake = PlaygroundSlack(now=lambda: self.clock.now().timestamp())
        self._base_settings = settings or Settings()
        # A fresh SQLite database, gone with the emulator's in-memory workspace when the playground stops (and
        # never your real DATABASE_URL: the playground's made-up workspace does not belong there).
        self._tmp = tempfile.TemporaryDirectory(prefix="peerlearn-playground-")
        self.database_url = f"sqlite:///{Path(self._tmp.name) / 'playground.db'}"
        self._scheduler = scheduler
        self._commands = manifest_commands()
        self._shortcuts = manifest_shortcuts()
        self._actions = threading.Lock()  # one person's action at a time, in order
        self._changes = 0  # state changes the emulator does not count as calls (people's own posts)
        self.closing = False
        self.runtime: Runtime
        self.server: HttpServer
        self.world: SlackWorld

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Playground:
        self.fake.start()
        signing_secret = secrets.token_hex(16)
        settings = dataclasses.replace(
            self._base_settings,
            bot_token=BOT_TOKEN,
            app_token=None,
            signing_secret=signing_secret,
            client_id=None,
            client_secret=None,
            database_url=self.database_url,
            slack_api_url=self.fake.base_url,
        )
        self.runtime = build_runtime(settings, clock=self.clock)
        self.server = serve_in_thread(self.runtime)
        executor = self.runtime.bolt_app.listener_runner.listener_executor
        self.world = SlackWorld(
            self.fake, self.server.url, signing_secret, self.clock, listener_executor=executor, runtime=self.runtime
        )
        for person in PEOPLE:
            self.world.add_user(
                person.id, name=person.name, real_name=person.real_name, tz=person.tz, is_admin=person.is_admin
            )
        for place in PLACES:
            self.world.add_channel(place.id, name=place.name, private=place.private, members=list(place.members))
        with _quiet():  # what the seeding does is on the page; its routine log lines would bury the page's address
            self._seed()
        if self._scheduler:
            self.runtime.start_scheduler()
        # Not the page's address (bot/playground/web.py prints it): no URL before it for a newcomer to open.
        logger.debug("playground: PeerLearn at %s, Slack emulator at %s", self.server.url, self.fake.url)
        return self

    def _seed(self) -> None:
        """The workspace a newcomer finds: topics, a thread, a session, a mentoring, an onboarding buddy."""
        for person in PEOPLE:
            if person.teaches:
                self.send(person.id, self.fake.im_for(person.id).id, f"/teach {person.teaches}")
        (first_user, first_text), *replies = SEEDED_THREAD
        root = self.send(first_user, "C_ENGINEERING", first_text)["ts"]
        for user, text in replies:
            self.send(user, "C_ENGINEERING", text, thread_ts=root)
        # An upcoming lunch-and-learn to sign up for (moving the clock past it brings the host's notes request).
        self.send("U_BERLIN", "C_ENGINEERING", f"/teach {SEED_SESSION}")
        # Mentoring: Bruno offers to mentor on #kubernetes and Nico, the newcomer, asks: their group DM shows it.
        self.send("U_BERLIN", "dm", "/teach mentor #kubernetes up to 2 people")
        self.send("U_NEWCOMER", "dm", "/ask mentor #kubernetes")
        self._seed_onboarding()
        self.world.settle()

    def _seed_onboarding(self) -> None:
        """Onboarding buddies, as people would set them up: Bruno volunteers, Maya (an admin) names #welcome the
        onboarding channel in App Home, and Nico, the newcomer, joins it: both get their introduction."""
        from bot.messages.onboarding import HOME_EDIT_ONBOARDING, ONBOARDING_MODAL

        self.send("U_BERLIN", self.fake.im_for("U_BERLIN").id, "/teach buddy")
        self.world.open_home("U_NEWYORK")
        self.world.settle()
        home = self.fake.home_view("U_NEWYORK")
        assert home is not None, "Maya's App Home was published"
        self.world.click("U_NEWYORK", HOME_EDIT_ONBOARDING, view_id=home["id"])
        self.world.settle()
        self.world.submit_view("U_NEWYORK", ONBOARDING_MODAL, {"onboarding_channel": "C_WELCOME"})
        self.world.send_event({"type": "member_joined_channel", "user": "U_NEWCOMER", "channel": "C_WELCOME"})
        self.world.settle()

    def stop(self) -> None:
        try:
            self.world.settle(timeout=5)
        except AssertionError:
            logger.warning("playground: stopping with listener work still running")
        self.server.stop()
        self.runtime.close()
        self.fake.stop()
        self._tmp.cleanup()

    # --- what people do (each one a signed request into the bot, as Slack would send it) -----------

    def _act(self, action: Callable[[], T]) -> T:
        with self._actions:
            try:
                return action()
            except AssertionError as refused:  # SlackWorld: Slack would not let this person do that
                raise PlaygroundError(str(refused).split(";")[0]) from None
            finally:
                with self.fake.lock:
                    self._changes += 1
                    self.fake.lock.notify_all()

    def send(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> Json:
        """The message box: `/command …` runs a slash command, anything else is a message (in a thread).
        `channel` "dm" is the person's DM with the bot."""
        self.person(user)
        channel = self.fake.im_for(user).id if channel == "dm" else self._channel(channel).id
        text = text.strip()
        if not text:
            raise PlaygroundError("Type a message first.")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command not in self._commands:
                known = ", ".join(sorted(self._commands))
                raise PlaygroundError(f"{command} is not a valid command. This app has {known}.")
            return self._act(lambda: self._command(user, command, self.world.typed(rest.strip()), channel))
        if self._channel(channel).is_im:
            raise PlaygroundError("PeerLearn's Messages tab is read-only: use /ask or /teach here.")
        ts = self._act(lambda: self.world.post(user, channel, self.world.typed(text), thread_ts))
        return {"ts": ts, **self._outcome(self.world.last_response)}

    def _command(self, user: str, command: str, text: str, channel: str) -> Json:
        response = self.world.command(user, command, text, channel)
        if response.status != 200:
            raise PlaygroundError(f'{command} failed with the error "dispatch_failed" (HTTP {response.status}).')
        ack = response.json() if response.body.lstrip().startswith("{") else None
        if ack and (ack.get("text") or ack.get("blocks")):
            self.fake.show_command_ack(user, channel, ack)
        return {"ok": True}

    def shortcut(self, user: str, channel: str, ts: str, callback_id: str) -> Json:
        """A message shortcut from the message's "More actions" menu (those the manifest declares)."""
        self.person(user)
        if callback_id not in {s["callback_id"] for s in self._shortcuts}:
            raise PlaygroundError(f"This app has no message shortcut {callback_id!r}.")
        self._message(channel, ts)
        return self._outcome(self._act(lambda: self.world.shortcut(user, callback_id, channel, ts)))

    def react(self, user: str, channel: str, ts: str, reaction: str) -> Json:
        """A reaction button: adds `reaction`, or removes it when the person already reacted so."""
        self.person(user)
        mine = any(
            r["name"] == reaction and user in r["users"] for r in self._message(channel, ts).get("reactions", [])
        )
        change = self.world.unreact if mine else self.world.react
        return self._outcome(self._act(lambda: change(user, reaction, channel, ts)))

    def click(
        self,
        user: str,
        action_id: str,
        value: Any = None,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        view_id: str | None = None,
    ) -> Json:
        self.person(user)
        where = {"channel": channel, "message_ts": message_ts, "view_id": view_id}
        return self._outcome(self._act(lambda: self.world.click(user, action_id, value, **where)))

    def submit(self, user: str, view_id: str, values: dict[str, Any]) -> Json:
        """Submit a modal. A required input left empty is answered as Slack's client does, under the field,
        without sending anything to the bot."""
        self.person(user)
        unfilled = self._act(lambda: self.world.unfilled(user, view_id, values))
        if unfilled:
            return {"ok": False, "errors": dict.fromkeys(unfilled, REQUIRED_FIELD)}
        response = self._act(lambda: self.world.submit_view(user, view_id, values))
        ack = response.json() if response.body.lstrip().startswith("{") else None
        return {**self._outcome(response), "ack": ack}

    def close(self, user: str, view_id: str) -> Json:
        self.person(user)

        def close_view() -> Response | None:
            try:
                view = self.fake.close_view(user, view_id)
            except SlackError:
                raise PlaygroundError("That dialog is already closed.") from None
            if not view.get("notify_on_close"):
                return None
            person = self.person(user)
            payload: Json = {"type": "view_closed", "api_app_id": APP_ID, "view": view, "is_cleared": False}
            payload.update(team={"id": TEAM_ID, "domain": TEAM_DOMAIN}, user=user_ref(person.id, person.name, TEAM_ID))
            return self.world.sender.interactivity(payload)

        response = self._act(close_view)
        return self._outcome(response) if response else {"ok": True}

    def open_home(self, user: str) -> Json:
        self.person(user)
        return self._outcome(self._act(lambda: self.world.open_home(user)))

    def post_digest(self, channel: str) -> Json:
        """ "Post digest now": what `python app.py digest --force` does, through the bot's own WebClient."""
        from bot.digest import posting as digest_posting
        from models.digest import DIGEST_POSTED

        place = self._channel(channel)
        if place.is_im:
            raise PlaygroundError("Digests are posted in channels: open one first.")

        def post() -> Json:
            services, client = self.runtime.services, self.runtime.bolt_app.client
            outcome = digest_posting.post_now(services, client, TEAM_ID, place.id, self.clock.now(), force=True)
            return {"ok": outcome.status == DIGEST_POSTED, "outcome": outcome.status, "error": outcome.error}

        return self._act(post)

    def travel(self, hours: float) -> Json:
        """Move the clock forward; the scheduler's jobs run at once to catch up (as after a restart)."""
        if not 0 < hours <= 24 * 14:
            raise PlaygroundError("Travel between a minute and two weeks ahead.")

        def advance() -> Json:
            self.clock.advance(timedelta(hours=hours))
            if self.runtime.scheduler is not None:
                for job in self.runtime.scheduler.get_jobs():
                    job.modify(next_run_time=datetime.now(UTC))
            return {"ok": True, "now": self.clock.now().isoformat()}

        return self._act(advance)

    # --- what the page shows --------------------------------------------------------------------------

    def version(self) -> int:
        """Grows with every change the page could show: the bot's Web API calls and people's actions."""
        with self.fake.lock:
            return len(self.fake.calls) + self._changes

    def wait_for_change(self, since: int, timeout: float) -> None:
        with self.fake.lock:
            self.fake.lock.wait_for(lambda: self.version() != since or self.closing, timeout)

    def release_waiters(self) -> None:
        """Answer every waiting long poll now (before the page's server stops)."""
        with self.fake.lock:
            self.closing = True
            self.fake.lock.notify_all()

    def state(self, user: str, channel: str | None = None, thread_ts: str | None = None) -> Json:
        """Everything `user` sees: their channels and DM, one channel ("dm": their DM with the bot) and thread,
        their ephemerals there, their App Home and open modal."""
        me = self.person(user)
        now = self.clock.now()
        settings = self.runtime.settings
        at_work = self._at_work(now)
        with self.fake.lock:
            dm = self.fake.im_for(user)
            places = [c for c in self.fake.channels.values() if not c.is_im and (not c.is_private or user in c.members)]
            people = []
            for person in PEOPLE:
                local = now.astimezone(ZoneInfo(person.tz))
                people.append(
                    {
                        **dataclasses.asdict(person),
                        "local_time": local.strftime("%a %H:%M"),
                        "working_hours": at_work[person.id],
                        "dm_latest": self._latest(self.fake.im_for(person.id).id),
                    }
                )
            state: Json = {
                "version": self.version(),
                "now": now.isoformat(),
                "me": me.id,
                "team": dict(self.fake.team),
                "people": people,
                "names": {u.id: u.real_name for u in self.fake.users.values()},
                "channel_names": {c.id: c.name for c in self.fake.channels.values() if not c.is_im},
                "channels": [
                    {"id": c.id, "name": c.name, "private": c.is_private, "latest": self._latest(c.id)} for c in places
                ],
                "dm": {"id": dm.id, "latest": self._latest(dm.id)},
                "reactions": [settings.accept_reaction, *settings.helpful_reactions],
                "shortcuts": self._shortcuts,
                "home": self.fake.home_view(user),
                "modal": next(reversed(self.fake.open_modals(user)), None),
                "violations": [str(v) for v in self.fake.violations[-RECENT_VIOLATIONS:]],
                "violation_count": len(self.fake.violations),
                "view": None,
                "thread": None,
            }
            where = dm if channel == "dm" else self.fake.channels.get(channel or "")
            if where is not None and where.id in {dm.id, *(c.id for c in places)}:
                state["view"] = {
                    "channel": {"id": where.id, "name": where.name, "private": where.is_private, "im": where.is_im},
                    "messages": self.fake.messages(where.id)[-MAX_MESSAGES:],
                    "ephemerals": [e for e in self._ephemerals(user, where.id) if not e.get("thread_ts")],
                }
                if thread_ts and thread_ts in where.messages:
                    state["thread"] = {
                        "ts": thread_ts,
                        "messages": self.fake.messages(where.id, thread_ts)[:MAX_MESSAGES],
                        "ephemerals": [e for e in self._ephemerals(user, where.id) if e.get("thread_ts") == thread_ts],
                    }
            return copy.deepcopy(state)  # a snapshot: the emulator keeps changing after the lock is released

    # --- helpers ------------------------------------------------------------------------------------

    def _at_work(self, now: datetime) -> dict[str, bool]:
        """Whether each person is within their working time, as routing sees it: their own hours and days (App
        Home), else the workspace's default (its settings), in their time zone."""
        with self.runtime.store.session() as session:
            workspace = effective_settings(session, TEAM_ID, self.runtime.settings)
            people = session.scalars(select(StoredPerson).where(StoredPerson.team_id == TEAM_ID))
            stored = {p.user_id: PersonFacts.of(p) for p in people}
        at_work = {}
        for person in PEOPLE:
            hours = availability_of(stored.get(person.id) or PersonFacts(person.id, tz=person.tz), workspace)
            at_work[person.id] = hours is None or is_within_working_hours(
                now, hours.tz_name, hours.start_hour, hours.end_hour, hours.work_days
            )
        return at_work

    def person(self, user_id: str) -> Person:
        person = next((p for p in PEOPLE if p.id == user_id), None)
        if person is None:
            raise PlaygroundError(f"Nobody called {user_id} works here.")
        return person

    def _channel(self, channel_id: str) -> Any:
        channel = self.fake.channels.get(channel_id)
        if channel is None:
            raise PlaygroundError(f"There is no channel {channel_id}.")
        return channel

    def _message(self, channel_id: str, ts: str) -> Json:
        try:
            return self.fake.message(self._channel(channel_id).id, ts)
        except SlackError:
            raise PlaygroundError("That message is gone.") from None

    def _latest(self, channel_id: str) -> str | None:
        messages = self.fake.channels[channel_id].messages
        return max(messages, key=float) if messages else None

    def _ephemerals(self, user: str, channel_id: str) -> list[Json]:
        return [e for e in self.fake.ephemerals if e["user"] == user and e["channel"] == channel_id]

    @staticmethod
    def _outcome(response: Response | None) -> Json:
        status = response.status if response is not None else 200
        return {"ok": status == 200, "status": status}
