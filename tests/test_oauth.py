""" "Add to Slack" for many workspaces: the OAuth flow end to end, tokens at rest, uninstalls, the stores.

The install goes through the real HTTP endpoint and Bolt's OAuth flow: /slack/install (a state in the
database and in a cookie) → Slack's authorize page (the emulator hands out a code) → /slack/oauth_redirect
(oauth.v2.access) → an installation in the database → that workspace's requests use its own token.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from bot.config import DEFAULT_BOT_SCOPES, ConfigError, Settings
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.runtime.oauth import (
    SEALED_PREFIX,
    InstallationStore,
    OAuthStateStore,
    TokenCipher,
    authorization_url,
    oauth_metadata,
)
from models.question import Question
from models.session import Store
from models.workspace import Workspace
from tests.production_harness import GENERAL, Replica, populate, running_peerlearn

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "test-client-secret"
KEY = Fernet.generate_key().decode()


@dataclass
class Page:
    status: int
    headers: http.client.HTTPMessage
    body: str


def browse(url: str, cookie: str | None = None) -> Page:
    """A browser GET that does not follow redirects (so we can read where Slack would send us)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        reply = connection.getresponse()
        return Page(reply.status, reply.headers, reply.read().decode())
    finally:
        connection.close()


def oauth_settings(key: str | None = None) -> dict:
    return {
        "bot_token": None,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "encryption_keys": (key,) if key else (),
    }


@pytest.fixture(params=["encrypted", "plain"])
def distributed(request, fake_slack, database_url, slack_clock) -> Iterator[Replica]:
    """PeerLearn in "Add to Slack" mode (no SLACK_BOT_TOKEN), tokens encrypted at rest or not."""
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    key = KEY if request.param == "encrypted" else None
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings(key)) as replica:
        populate(replica.world)
        yield replica


def install(replica: Replica, user: str = "U_ASKER") -> tuple[Page, str]:
    """An admin clicks "Add to Slack", allows it on Slack's page and lands back on the redirect URL."""
    start = browse(replica.url + "/slack/install")
    assert start.status == 200, start.body
    link = re.search(r'href="([^"]+/oauth/v2/authorize\?[^"]+)"', start.body)
    assert link, "the install page links to Slack's authorize page"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == [",".join(DEFAULT_BOT_SCOPES)]
    cookie = start.headers.get("Set-Cookie", "").split(";")[0]
    code = replica.world.fake.approve_install(user, client_id=CLIENT_ID, scopes=query["scope"][0])
    redirect = f"{replica.url}/slack/oauth_redirect?code={code}&state={query['state'][0]}"
    return browse(redirect, cookie), cookie


def raw_tokens(replica: Replica) -> list[str]:
    with replica.runtime.store.session() as session:
        rows = session.execute(
            text("SELECT bot_token FROM slack_installations UNION ALL SELECT bot_token FROM slack_bots")
        )
        return [row[0] for row in rows]


def test_add_to_slack_installs_and_the_workspace_is_served_with_its_own_token(distributed):
    world = distributed.world
    landing, _ = install(distributed)
    assert landing.status == 200, landing.body
    [exchange] = world.fake.calls_to("oauth.v2.access")
    assert exchange.ok
    token = exchange.response["access_token"]
    assert token != BOT_TOKEN

    installation = distributed.runtime.bolt_app.installation_store.find_installation(
        enterprise_id=None, team_id=TEAM_ID
    )
    assert installation is not None and installation.bot_token == token
    assert (installation.bot_user_id, installation.user_id) == ("UBOT", "U_ASKER")
    assert distributed.runtime.bot_token_for(TEAM_ID) == token

    since = world.fake.mark()
    question = world.ask("U_ASKER", "How do I vacuum a big table? #postgres", GENERAL)
    answer_ts = world.reply("U_EXPERT", question, "VACUUM (VERBOSE) it at night.")
    world.react("U_ASKER", "white_check_mark", GENERAL, answer_ts)
    world.fake.wait_for("chat.update", since=since)
    world.settle()
    calls = [call for call in world.fake.calls[since:] if call.method != "response_url"]
    assert calls and {call.token for call in calls} == {token}
    assert not world.fake.calls_to("auth.test", since=since), "requests are authorized from the database"
    with distributed.runtime.store.session() as session:
        assert session.scalars(select(Question)).one().status == "resolved"
        assert session.get(Workspace, TEAM_ID).active


def test_tokens_are_encrypted_at_rest_when_a_key_is_set(fake_slack, database_url, slack_clock):
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings(KEY)) as replica:
        populate(replica.world)
        install(replica)
        token = fake_slack.calls_to("oauth.v2.access")[0].response["access_token"]
        stored = raw_tokens(replica)
        assert len(stored) == 2  # the installation and its bot
        assert all(value.startswith(SEALED_PREFIX) and token not in value for value in stored)
        assert TokenCipher([KEY]).open(stored[0]) == token
        replica.world.ask("U_ASKER", "Is the token decrypted to call Slack? #security", GENERAL)
        assert fake_slack.calls_to("chat.postMessage")[-1].token == token


def test_without_a_key_tokens_are_stored_as_slack_issued_them(fake_slack, database_url, slack_clock):
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings()) as replica:
        install(replica)
        token = fake_slack.calls_to("oauth.v2.access")[0].response["access_token"]
        assert raw_tokens(replica) == [token, token]


def test_a_state_works_once_and_only_from_the_browser_that_started(distributed):
    landing, cookie = install(distributed)
    assert landing.status == 200
    state = cookie.split("=", 1)[1]  # Bolt's state cookie holds the state it issued
    code = distributed.world.fake.approve_install("U_ASKER", client_id=CLIENT_ID, scopes="commands")
    replay = browse(f"{distributed.url}/slack/oauth_redirect?code={code}&state={state}", cookie)
    assert replay.status >= 400, "a consumed state is refused"

    start = browse(distributed.url + "/slack/install")
    fresh_state = start.headers.get("Set-Cookie", "").split(";")[0].split("=", 1)[1]
    stolen = browse(f"{distributed.url}/slack/oauth_redirect?code={code}&state={fresh_state}")
    assert stolen.status >= 400, "without the installer's cookie the state is refused"
    assert len(distributed.world.fake.calls_to("oauth.v2.access")) == 1


def test_a_workspace_without_an_installation_is_not_served(distributed):
    world = distributed.world
    response = world.command("U_ASKER", "/ask", "Anyone there? #ops", GENERAL)
    assert response.status == 200
    world.fake.wait_for("response_url")
    assert "reinstall this app" in str(world.ephemerals("U_ASKER")[-1])  # Bolt's own words, via response_url
    world.post("U_EXPERT", GENERAL, "chatter")
    world.settle()
    assert distributed.count(Question) == 0
    assert not [call for call in world.fake.calls if call.method.startswith("chat.")]


def test_uninstalling_forgets_the_tokens_and_disables_the_workspace(distributed):
    world = distributed.world
    install(distributed)
    world.ask("U_ASKER", "Before the uninstall? #ops", GENERAL)
    world.settle()
    installations = distributed.runtime.bolt_app.installation_store

    world.send_event({"type": "tokens_revoked", "tokens": {"oauth": ["U_SOMEONE"]}})
    assert installations.find_installation(enterprise_id=None, team_id=TEAM_ID) is not None
    with distributed.runtime.store.session() as session:
        assert session.get(Workspace, TEAM_ID).active, "a revoked user token leaves the bot working"

    assert world.send_event({"type": "app_uninstalled"}).status == 200
    assert installations.find_installation(enterprise_id=None, team_id=TEAM_ID) is None
    assert installations.find_bot(enterprise_id=None, team_id=TEAM_ID) is None
    assert raw_tokens(distributed) == []
    with distributed.runtime.store.session() as session:
        workspace = session.get(Workspace, TEAM_ID)
        assert (workspace.active, workspace.disabled_reason) == (False, "app_uninstalled")

    install(distributed)  # installing again brings the workspace back
    with distributed.runtime.store.session() as session:
        workspace = session.get(Workspace, TEAM_ID)
        assert (workspace.active, workspace.disabled_reason) == (True, None)


def test_a_revoked_bot_token_is_forgotten(distributed):
    install(distributed)
    distributed.world.send_event({"type": "tokens_revoked", "tokens": {"bot": ["UBOT"]}})
    assert distributed.runtime.bot_token_for(TEAM_ID) is None
    assert raw_tokens(distributed) == []


# --- the stores and their tables --------------------------------------------------------------------------


def test_the_migrated_tables_match_what_the_stores_build(database_url):
    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            ours = set(oauth_metadata().tables)
            differences = [
                diff
                for diff in compare_metadata(context, oauth_metadata())
                if diff[0] != "remove_table" and diff[0] != "remove_index"
            ]
        assert ours == {"slack_installations", "slack_bots", "slack_oauth_states"}
        assert differences == []
    finally:
        store.dispose()


def test_a_state_is_consumed_once_even_by_two_replicas(database_url):
    store = Store.from_url(database_url)
    try:
        one, two = OAuthStateStore(store.engine), OAuthStateStore(store.engine)
        state = one.issue()
        assert [one.consume(state), two.consume(state)] == [True, False]
        expired = OAuthStateStore(store.engine, expiration_seconds=-1)
        assert not expired.consume(expired.issue())
        assert not one.consume("never-issued")
    finally:
        store.dispose()


def test_the_installation_store_reads_tokens_stored_before_a_key_was_set(database_url):
    from slack_sdk.oauth.installation_store import Installation

    store = Store.from_url(database_url)
    try:
        plain = InstallationStore(CLIENT_ID, store.engine)
        plain.save(Installation(app_id="A1", team_id="T9", user_id="U1", bot_token="xoxb-9-old", bot_id="B9"))
        sealed = InstallationStore(CLIENT_ID, store.engine, TokenCipher([KEY]))
        assert sealed.find_installation(enterprise_id=None, team_id="T9").bot_token == "xoxb-9-old"
        sealed.save(Installation(app_id="A1", team_id="T9", user_id="U1", bot_token="xoxb-9-new", bot_id="B9"))
        assert sealed.find_bot(enterprise_id=None, team_id="T9").bot_token == "xoxb-9-new"
        with pytest.raises(ConfigError, match="PEERLEARN_ENCRYPTION_KEY"):
            plain.find_installation(enterprise_id=None, team_id="T9")
    finally:
        store.dispose()


def test_encryption_keys_rotate_and_a_wrong_key_is_named():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = TokenCipher([old]).seal("xoxb-1-secret")
    assert sealed_with_old is not None and "xoxb" not in sealed_with_old
    rotating = TokenCipher([new, old])
    assert rotating.open(sealed_with_old) == "xoxb-1-secret"
    sealed_with_new = rotating.seal("xoxb-2")
    assert TokenCipher([new]).open(sealed_with_new) == "xoxb-2", "the first key encrypts"
    with pytest.raises(ConfigError):
        TokenCipher([old]).open(sealed_with_new)
    with pytest.raises(ConfigError, match="PEERLEARN_ENCRYPTION_KEY"):
        TokenCipher([new]).open(sealed_with_old)
    assert rotating.seal(sealed_with_old) == sealed_with_old, "sealing twice changes nothing"


# --- configuration ------------------------------------------------------------------------------------------


def test_oauth_settings_from_the_environment():
    env = {"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET, "PEERLEARN_ENCRYPTION_KEY": KEY}
    settings = Settings.from_env(env)
    assert settings.oauth_enabled and settings.encryption_keys == (KEY,)
    assert settings.scopes == DEFAULT_BOT_SCOPES
    assert Settings.from_env({**env, "SLACK_SCOPES": "commands, chat:write"}).scopes == ("commands", "chat:write")
    assert not Settings.from_env({}).oauth_enabled
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET"):
        Settings.from_env({"SLACK_CLIENT_ID": CLIENT_ID})
    with pytest.raises(ConfigError, match=r"PEERLEARN_ENCRYPTION_KEY.*generate_key"):
        Settings.from_env({"PEERLEARN_ENCRYPTION_KEY": "not-a-key"})
    with pytest.raises(ConfigError, match="PEERLEARN_LOG_FORMAT"):
        Settings.from_env({"PEERLEARN_LOG_FORMAT": "xml"})
    govslack = Settings(slack_api_url="https://slack-gov.com/api/")
    assert authorization_url(govslack) == "https://slack-gov.com/oauth/v2/authorize"


def test_the_default_scopes_are_the_manifests():
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == DEFAULT_BOT_SCOPES


def test_serve_in_add_to_slack_mode_needs_no_bot_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PEERLEARN_")) and k != "DATABASE_URL"}
    env |= {"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SLACK_SIGNING_SECRET" in result.stderr and "SLACK_BOT_TOKEN" not in result.stderr


def state_rows(replica: Replica) -> int:
    with replica.runtime.store.session() as session:
        return int(session.execute(text("SELECT count(*) FROM slack_oauth_states")).scalar_one())


def test_unsigned_install_page_views_are_bounded(fake_slack, database_url, slack_clock, monkeypatch, caplog):
    """GET /slack/install needs no signature and stores an OAuth state: at most MAX_PENDING_STATES wait at once
    (expired ones go first); beyond, a page says to try again later and nothing is stored."""
    monkeypatch.setattr("bot.runtime.oauth.MAX_PENDING_STATES", 3, raising=False)
    fake_slack.add_oauth_app(CLIENT_ID, CLIENT_SECRET)
    with running_peerlearn(fake_slack, database_url, slack_clock, **oauth_settings(KEY)) as replica:
        populate(replica.world)
        pages = [browse(replica.url + "/slack/install") for _ in range(10)]
        assert [page.status for page in pages] == [200] * 3 + [503] * 7
        assert "try again in a few minutes" in pages[-1].body and pages[-1].headers["Retry-After"] == "60"
        assert "Set-Cookie" not in pages[-1].headers
        assert state_rows(replica) == 3
        busy = [r for r in caplog.records if "installs are under way" in r.getMessage()]
        assert len(busy) == 1 and not any(r.exc_info for r in caplog.records)

        with replica.runtime.store.session() as session:  # ten minutes later, the states have expired
            session.execute(text("UPDATE slack_oauth_states SET expire_at = '2000-01-01 00:00:00'"))
        landing, _ = install(replica)  # an admin can install again
        assert landing.status == 200, landing.body
        assert state_rows(replica) == 0  # the expired ones were deleted, the new one consumed
