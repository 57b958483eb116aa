"""LOG_LEVEL=DEBUG keeps the README's promise: no message text, OAuth code, token or secret in the log.

Logging is set up as `app.py` sets it up (bot/logging_setup.configure_logging), at DEBUG; then an admin
installs PeerLearn with "Add to Slack" (the redirect carries Slack's one-time code) and a person asks a
question with /ask, through the real endpoint and the bot's real Web API calls to the emulator.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.runtime.logging import LIBRARY_FLOORS, configure_logging
from tests.production_harness import GENERAL, populate, running_peerlearn
from tests.slack.fixtures import SIGNING_SECRET
from tests.test_oauth import CLIENT_ID, CLIENT_SECRET, KEY, install, oauth_settings

QUESTION = "Where is the on-call rota for the payments team? #ops"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at LOG_LEVEL=DEBUG, as PeerLearn writes it (one key=value line per record)."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers), {name: logging.getLogger(name).level for name in LIBRARY_FLOORS}
    stream = io.StringIO()
    configure_logging("DEBUG", "text", stream)
    try:
        yield stream
    finally:
        level, handlers, levels = saved
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, own in levels.items():
            logging.getLogger(name).setLevel(own)


def test_debug_logs_no_question_text_oauth_code_token_or_secret(debug_log, fake_slack, database_url, slack_clock):
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings(KEY)) as replica:
        populate(replica.world)
        landing, _ = install(replica)
        assert landing.status == 200, landing.body
        posted = replica.world.ask("U_ASKER", QUESTION, GENERAL)
        assert "on-call rota" in posted.plain
        replica.world.reply("U_EXPERT", posted, "It is pinned in #payments-oncall.")
        replica.world.settle()
    [exchange] = fake_slack.calls_to("oauth.v2.access")
    code, token = exchange.args["code"], exchange.response["access_token"]

    log = debug_log.getvalue()
    assert logging.getLogger("peerlearn").isEnabledFor(logging.DEBUG)
    assert "posted in C_GENERAL" in log and "installed in workspace" in log, "the log saw it all happen"
    assert "on-call rota" not in log and "pinned in" not in log, "no message text"
    assert code not in log, "no OAuth code"
    assert token not in log and "xoxb-" not in log, "no token"
    for secret in (CLIENT_SECRET, SIGNING_SECRET, KEY):
        assert secret not in log, "no secret"
