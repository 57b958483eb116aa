"""Running PeerLearn the way production does, for the production/OAuth/resilience tests.

`running_peerlearn(...)` starts one replica (its own runtime and HTTP server) on a given database with any
settings; several can share one database, as replicas behind a load balancer do. Each replica comes with a
SlackWorld pointed at it, so tests read like the other scenario tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.world import SlackWorld
from bot.runtime.http import HttpServer
from bot.runtime.wiring import Runtime, build_runtime, serve_in_thread
from tests.slack.fixtures import SIGNING_SECRET

GENERAL = "C_GENERAL"
PEOPLE = ("U_ASKER", "U_EXPERT", "U_FAN", "U_BYSTANDER")


@dataclass
class Replica:
    runtime: Runtime
    server: HttpServer
    world: SlackWorld

    @property
    def url(self) -> str:
        return self.server.url

    def count(self, model: Any) -> int:
        with self.runtime.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def settings_for(fake: FakeSlackAPI, database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        database_url=database_url,
        slack_api_url=fake.base_url,
    )
    return dataclasses.replace(base, **overrides)


@contextlib.contextmanager
def running_peerlearn(fake: FakeSlackAPI, database_url: str, clock: FrozenClock, **overrides: Any) -> Iterator[Replica]:
    """One replica serving HTTP until the block ends; its background work is waited for before it stops."""
    runtime = build_runtime(settings_for(fake, database_url, **overrides), clock=clock)
    server = serve_in_thread(runtime)
    executor = runtime.bolt_app.listener_runner.listener_executor
    world = SlackWorld(fake, server.url, SIGNING_SECRET, clock, listener_executor=executor, runtime=runtime)
    try:
        yield Replica(runtime, server, world)
        world.settle()
    finally:
        server.stop()
        runtime.close()


def populate(world: SlackWorld) -> None:
    """#general with an asker, an expert, a fan and a bystander (and the bot)."""
    for user in PEOPLE:
        if user not in world.fake.users:
            world.add_user(user)
    if GENERAL not in world.fake.channels:
        world.add_channel(GENERAL, name="general", members=list(PEOPLE))
