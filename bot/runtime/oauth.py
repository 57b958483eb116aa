"""'Add to Slack' for many workspaces: where installations and OAuth states live, and how tokens are kept.

slack_sdk's SQLAlchemy stores, with three changes that matter in production:
- token columns are wide enough for Fernet ciphertext, and tokens are encrypted at rest when
  PEERLEARN_ENCRYPTION_KEY is set (`TokenCipher`);
- consuming an OAuth state is one atomic DELETE, so two replicas can never both accept the same state;
- requests are authorized from the stored installation alone (`InstallationAuthorize`): no `auth.test`
  call to Slack before the ack, so storing an event never depends on Slack answering.

The tables are built by the stores' own classmethods on `oauth_metadata()`, which Alembic compares with
the database (migrations/env.py); migration 0004 creates them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_bolt.context import BoltContext
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_flow import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store import InstallationStore as BaseInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Engine, MetaData, String, Table

from bot.clock import Clock
from bot.config import ConfigError, Settings
from models.session import Store
from models.workspace import ensure_workspace

logger = logging.getLogger("peerlearn.oauth")

TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
# Fernet roughly multiplies a token's length by 1.4 and adds ~80 characters; rotating tokens are ~150 long.
TOKEN_COLUMN_LENGTH = 1024
SEALED_PREFIX = "fernet:"
STATE_EXPIRATION_SECONDS = 600
# Installs begun and not finished (an OAuth state each, kept STATE_EXPIRATION_SECONDS): "Add to Slack" is an
# admin's click, a few a day; GET /slack/install needs no signature, so without a bound anyone could fill the
# table (about 300 rows a second were possible).
MAX_PENDING_STATES = 1000
BUSY_INSTALL_PAGE = (
    "<html><body><h1>Too many installations are under way</h1><p>PeerLearn is handling many installations "
    "started in the last few minutes. Please try again in a few minutes.</p></body></html>"
)


class TooManyPendingInstalls(Exception):
    """MAX_PENDING_STATES OAuth states are waiting already: no new install can start until some expire."""


class TokenCipher:
    """Fernet encryption for tokens at rest. Several keys rotate: the first encrypts, any of them decrypts."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("TokenCipher needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, token: str | None) -> str | None:
        if token is None or token.startswith(SEALED_PREFIX):
            return token
        return SEALED_PREFIX + self._fernet.encrypt(token.encode()).decode()

    def open(self, value: str | None) -> str | None:
        if value is None or not value.startswith(SEALED_PREFIX):
            return value  # stored before a key was set: still readable, sealed at the next install
        try:
            return self._fernet.decrypt(value.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "A stored Slack token can't be decrypted with PEERLEARN_ENCRYPTION_KEY: the key changed. "
                "Put the old key after the new one (comma-separated) until every workspace has reinstalled."
            ) from None


def _open_without_key(value: str | None) -> str | None:
    if value is not None and value.startswith(SEALED_PREFIX):
        raise ConfigError("Slack tokens in the database are encrypted: set PEERLEARN_ENCRYPTION_KEY to read them.")
    return value


def _widen_token_columns(table: Table) -> Table:
    for name in TOKEN_COLUMNS:
        if name in table.c:
            table.c[name].type = String(TOKEN_COLUMN_LENGTH)
    return table


class InstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy installation store, with wide token columns and optional encryption at rest."""

    def __init__(self, client_id: str, engine: Engine, cipher: TokenCipher | None = None) -> None:
        super().__init__(client_id=client_id, engine=engine, logger=logging.getLogger("peerlearn.oauth.store"))
        self.cipher = cipher

    @classmethod
    def build_installations_table(cls, metadata: MetaData, table_name: str) -> Table:
        return _widen_token_columns(super().build_installations_table(metadata, table_name))

    @classmethod
    def build_bots_table(cls, metadata: MetaData, table_name: str) -> Table:
        return _widen_token_columns(super().build_bots_table(metadata, table_name))

    def _convert(self, entity: Any, convert: Callable[[str | None], str | None]) -> Any:
        converted = copy.copy(entity)
        for name in TOKEN_COLUMNS:
            if hasattr(converted, name):
                setattr(converted, name, convert(getattr(converted, name)))
        return converted

    def _seal(self, entity: Any) -> Any:
        return self._convert(entity, self.cipher.seal) if self.cipher else entity

    def _open(self, entity: Any) -> Any:
        if entity is None:
            return None
        return self._convert(entity, self.cipher.open if self.cipher else _open_without_key)

    # Sealing is idempotent, so the base class's save() calling save_bot() with sealed tokens is fine.
    def save(self, installation: Installation) -> None:
        super().save(self._seal(installation))

    def save_bot(self, bot: Bot) -> None:
        super().save_bot(self._seal(bot))

    def find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = super().find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return self._open(found)  # type: ignore[no-any-return]

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = super().find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._open(found)  # type: ignore[no-any-return]


class OAuthStateStore(SQLAlchemyOAuthStateStore):
    """slack_sdk's SQLAlchemy state store; a state is consumed by one atomic DELETE (safe across replicas), and
    at most `max_pending` unexpired states exist (expired ones are deleted before a new one is issued)."""

    def __init__(
        self,
        engine: Engine,
        expiration_seconds: int = STATE_EXPIRATION_SECONDS,
        max_pending: int = MAX_PENDING_STATES,
    ) -> None:
        super().__init__(
            expiration_seconds=expiration_seconds, engine=engine, logger=logging.getLogger("peerlearn.oauth.state")
        )
        self.max_pending = max_pending
        self._refusing = False  # said once in the log until states are issued again

    @classmethod
    def build_oauth_states_table(cls, metadata: MetaData, table_name: str) -> Table:
        table = super().build_oauth_states_table(metadata, table_name)
        sa.Index(f"{table_name}_state_idx", table.c.state, unique=True)
        return table

    def issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state; raises TooManyPendingInstalls when max_pending are waiting already."""
        self._forget_expired()
        table = self.oauth_states
        with self.engine.connect() as conn:
            pending = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if pending >= self.max_pending:
            if not self._refusing:
                logger.warning("%s installs are under way (the most kept): new ones wait until some expire", pending)
            self._refusing = True
            raise TooManyPendingInstalls
        self._refusing = False
        return super().issue(*args, **kwargs)

    def consume(self, state: str) -> bool:
        table = self.oauth_states
        with self.engine.begin() as conn:
            deleted = conn.execute(table.delete().where(table.c.state == state, table.c.expire_at > _naive_utc_now()))
            return deleted.rowcount == 1

    def _forget_expired(self) -> None:
        table = self.oauth_states
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.expire_at <= _naive_utc_now()))


def _naive_utc_now() -> datetime:
    # slack_sdk's tables keep naive UTC datetimes (TIMESTAMP WITHOUT TIME ZONE).
    return datetime.now(UTC).replace(tzinfo=None)


def oauth_metadata() -> MetaData:
    """The OAuth tables, built by the stores' own classmethods without an engine (for Alembic)."""
    metadata = MetaData()
    InstallationStore.build_installations_table(metadata, InstallationStore.default_installations_table_name)
    InstallationStore.build_bots_table(metadata, InstallationStore.default_bots_table_name)
    OAuthStateStore.build_oauth_states_table(metadata, OAuthStateStore.default_table_name)
    return metadata


class InstallationAuthorize(Authorize):
    """Authorize a request from the stored installation, without calling Slack.

    Bolt's default asks `auth.test` on every request before the ack; everything it would learn (team,
    bot id, bot user id, scopes) was stored at install time. A database error propagates, so Bolt answers
    500 and Slack retries instead of the event being acknowledged and dropped.
    """

    def __init__(self, installation_store: BaseInstallationStore) -> None:
        self.installation_store = installation_store

    def __call__(
        self,
        *,
        context: BoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_actor: Any,
    ) -> AuthorizeResult | None:
        installation = self.installation_store.find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=context.is_enterprise_install
        )
        if installation is None or not installation.bot_token:
            logger.warning("no installation for team %s: PeerLearn was uninstalled there or never installed", team_id)
            return None
        return AuthorizeResult(
            enterprise_id=installation.enterprise_id,
            team_id=installation.team_id,
            team=installation.team_name,
            bot_user_id=installation.bot_user_id,
            bot_id=installation.bot_id,
            bot_token=installation.bot_token,
            bot_scopes=installation.bot_scopes,
            user_id=user_id,
        )


def authorization_url(settings: Settings) -> str:
    """Slack's authorize page next to the Web API (GovSlack and test deployments set SLACK_API_URL)."""
    return urljoin(settings.slack_api_url, "../oauth/v2/authorize")


UNENCRYPTED_WARNING = (
    "Slack tokens of the workspaces that install PeerLearn are stored UNENCRYPTED in the database: set "
    'PEERLEARN_ENCRYPTION_KEY to a Fernet key to encrypt them (make one with: python -c "from cryptography.fernet '
    'import Fernet; print(Fernet.generate_key().decode())")'
)


class InstallFlow(OAuthFlow):
    """Bolt's OAuth flow; an install that cannot start because too many are under way gets a page saying so
    (503, try again later) instead of an error."""

    def handle_installation(self, request: BoltRequest) -> BoltResponse:
        try:
            return super().handle_installation(request)
        except TooManyPendingInstalls:
            headers: dict[str, str | Sequence[str]] = {"Content-Type": "text/html; charset=utf-8", "Retry-After": "60"}
            return BoltResponse(status=503, body=BUSY_INSTALL_PAGE, headers=headers)


def build_oauth_settings(settings: Settings, store: Store, clock: Clock) -> OAuthSettings:
    cipher = TokenCipher(settings.encryption_keys) if settings.encryption_keys else None
    if cipher is None:
        logger.warning(UNENCRYPTED_WARNING)
    installation_store = InstallationStore(settings.client_id or "", store.engine, cipher)
    oauth = OAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=list(settings.scopes),
        user_scopes=[],
        redirect_uri=settings.redirect_uri,
        install_path="/slack/install",
        redirect_uri_path="/slack/oauth_redirect",
        authorization_url=authorization_url(settings),
        installation_store=installation_store,
        state_store=OAuthStateStore(store.engine, STATE_EXPIRATION_SECONDS, MAX_PENDING_STATES),
        state_expiration_seconds=STATE_EXPIRATION_SECONDS,
        logger=logging.getLogger("peerlearn.oauth.flow"),
    )

    def installed(args: SuccessArgs) -> BoltResponse:
        team_id = args.installation.team_id or ""
        with store.session() as session:
            workspace = ensure_workspace(session, team_id, clock.now())
            workspace.active, workspace.disabled_reason = True, None
            workspace.name = args.installation.team_name or workspace.name
        logger.info("PeerLearn installed in workspace %s by %s", team_id, args.installation.user_id)
        return args.default.success(args)  # Bolt's own "installed" page

    def failed(args: FailureArgs) -> BoltResponse:
        logger.warning("an installation failed: %s", args.reason)
        return args.default.failure(args)

    oauth.callback_options = CallbackOptions(success=installed, failure=failed)
    return oauth
