"""Shared by the routing, similar-question and escalation scenarios: a PeerLearn that can be started with
its own settings and restarted on the same database, the routing tick at a frozen moment, and readers
for what each person got."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message as EmailMessage
from typing import Any

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.signing import Response
from bot.playground.emulator.transcript import Message
from bot.playground.emulator.workspace import BOT_USER_ID
from bot.playground.emulator.world import SlackWorld
from bot.routing import escalation
from bot.runtime.http import HttpServer
from bot.runtime.wiring import Runtime, build_runtime, serve_in_thread
from models.expert import KnowledgeGap, RouteRequest
from models.question import Question
from tests.slack.fixtures import SIGNING_SECRET

GENERAL = "C_GENERAL"
SECRET = "G_SECRET"


@dataclass
class Bot:
    """One running PeerLearn (HTTP endpoint, database, frozen clock) and the SlackWorld around it."""

    fake: FakeSlackAPI
    settings: Settings
    clock: FrozenClock
    # The bots of the test, this one included: replicas on one database see each other's inbox work.
    peers: list[Bot] = field(default_factory=list)
    runtime: Runtime = field(init=False)
    server: HttpServer = field(init=False)
    world: SlackWorld = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.runtime = build_runtime(self.settings, clock=self.clock)
        self.server = serve_in_thread(self.runtime)
        executor = self.runtime.bolt_app.listener_runner.listener_executor
        self.world = SlackWorld(
            self.fake, self.server.url, SIGNING_SECRET, self.clock, listener_executor=executor, runtime=self.runtime
        )
        for peer in self.peers:
            if peer is not self and peer.settings.database_url == self.settings.database_url:
                peer.world.watch(self.runtime)
                self.world.watch(peer.runtime)

    def stop(self) -> None:
        self.world.settle()
        self.server.stop()
        self.runtime.close()

    def restart(self) -> Bot:
        """The process goes away and a new one starts on the same database (nothing kept in memory)."""
        self.stop()
        self.start()
        return self

    def tick(self, at: datetime | None = None) -> escalation.TickReport:
        """The scheduler's routing job, run once at `at` (the clock moves there first)."""
        if at is not None:
            self.clock.set(at)
        report = escalation.tick(self.runtime.services, self.runtime.bolt_app.client, self.clock.now())
        self.world.settle()
        return report

    @property
    def store(self) -> Any:
        return self.runtime.store


def bot_maker(fake: FakeSlackAPI, database_url: str, clock: FrozenClock) -> Iterator[Callable[..., Bot]]:
    """Body of each scenario file's `make_bot` fixture: `make_bot(route_top_n=1, …)` starts a PeerLearn with
    these settings; several share one database, emulator and clock; all stop at the end of the test."""
    bots: list[Bot] = []

    def make(**overrides: Any) -> Bot:
        settings = Settings(
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            database_url=database_url,
            slack_api_url=fake.base_url,
            **overrides,
        )
        bot = Bot(fake, settings, clock, peers=bots)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.stop()


def add_people(world: SlackWorld, channel: str = GENERAL, private: bool = False, **people: str) -> None:
    """`add_people(world, U_ASKER="Europe/Berlin", …)`: users in those zones, all members of `channel`."""
    for user_id, tz in people.items():
        if user_id not in world.fake.users:
            world.add_user(user_id, tz=tz)
    if channel in world.fake.channels:
        world.fake.channels[channel].members.update(people)
    else:
        world.add_channel(channel, name=channel.lower(), private=private, members=list(people))


def declare(world: SlackWorld, user: str, tags: str, channel: str = GENERAL) -> None:
    """`/teach #tags` through the real endpoint."""
    response = world.command(user, "/teach", tags, channel)
    assert response.status == 200, response.body
    world.settle()


def dms(world: SlackWorld, user: str) -> list[Message]:
    """What the bot wrote to `user` in their DM with it, oldest first."""
    return [m for m in world.messages(user) if m.user == BOT_USER_ID]


def routing_dms(world: SlackWorld, user: str) -> list[Message]:
    """The routing DMs `user` got (each carries an "I'll take it" button or the note that replaced it)."""
    return [m for m in dms(world, user) if "asked in" in m.plain or "questions you may know" in m.plain]


def buttons(message: Message | dict[str, Any]) -> list[tuple[str, str]]:
    """(action_id, value) of every button in a message."""
    found = []
    blocks = message.blocks if isinstance(message, Message) else message.get("blocks") or []
    for block in blocks:
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("type") == "button":
                found.append((element["action_id"], element.get("value", "")))
    return found


def block_texts(node: Any) -> list[str]:
    """Every text in Block Kit blocks (or any part of them), in order."""
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        return own + [text for value in node.values() for text in block_texts(value)]
    if isinstance(node, list):
        return [text for item in node for text in block_texts(item)]
    return []


def plain(payload: dict[str, Any]) -> str:
    """An ephemeral's (or any payload's) fallback text and every text in its blocks."""
    return "\n".join([payload.get("text", ""), *block_texts(payload.get("blocks"))])


def thread(world: SlackWorld, question: Message) -> list[Message]:
    """The replies in a question's thread (the question itself left out)."""
    return world.messages(question.channel, thread_ts=question.ts)[1:]


def question_of(store: Any, message: Message) -> Question:
    with store.session() as s:
        question = s.scalar(select(Question).where(Question.message_ts == message.ts))
        assert question is not None, f"no question stored for {message.ts}"
        return question


def requests_of(store: Any, question_id: int) -> dict[str, RouteRequest]:
    with store.session() as s:
        return {r.expert_id: r for r in s.scalars(select(RouteRequest).where(RouteRequest.question_id == question_id))}


def gaps_of(store: Any, question_id: int) -> list[str]:
    with store.session() as s:
        return sorted(s.scalars(select(KnowledgeGap.tag).where(KnowledgeGap.question_id == question_id)))


def double_click(world: SlackWorld, user: str, action_id: str, value: str, **where: Any) -> None:
    """`user` clicks, and Slack delivers the very same click again (a double click, or a retry), whatever
    the first click changed on screen meanwhile."""
    sent: list[Any] = []
    deliver = world.sender.interactivity

    def capture(payload: Any, **options: Any) -> Any:
        sent.append(payload)
        return deliver(payload, **options)

    world.sender.interactivity = capture  # type: ignore[method-assign]
    try:
        first = world.click(user, action_id, value, **where)
    finally:
        world.sender.interactivity = deliver  # type: ignore[method-assign]
    second = deliver(sent[0])
    assert first.status == second.status == 200, (first, second)
    world.settle()


def click_later(world: SlackWorld, user: str, action_id: str, value: str, **where: Any) -> Callable[[], Response]:
    """`user` clicks on what their screen shows now, and the click reaches PeerLearn only when the returned
    function is called (a screen not redrawn yet, a slow network): the click of an outdated message."""
    held: list[Any] = []
    deliver = world.sender.interactivity

    def hold(payload: Any, **options: Any) -> Response:
        held.append(payload)
        return Response(200, EmailMessage(), "")

    world.sender.interactivity = hold  # type: ignore[method-assign]
    try:
        world.click(user, action_id, value, **where)
    finally:
        world.sender.interactivity = deliver  # type: ignore[method-assign]

    def send() -> Response:
        response = deliver(held[0])
        world.settle()
        return response

    return send
