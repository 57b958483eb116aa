"""Settings from the environment (and `.env`), failing fast with a message that says what to do."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.workdays import MONDAY_TO_FRIDAY, days_from_names

DEFAULT_DATABASE_URL = "sqlite:///peerlearn.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
SETUP_HELP = "README.md, section 'Create the Slack app' (it takes five minutes)."
# The bot scopes "Add to Slack" asks for; keep in step with manifest.yml (a test compares them).
DEFAULT_BOT_SCOPES = (
    "commands",
    "chat:write",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "reactions:read",
    "users:read",
    "im:write",
    "mpim:write",
    "team:read",
)
LOG_FORMATS = ("text", "json")


class ConfigError(Exception):
    """A setting is missing or malformed; the message tells the operator how to fix it."""


# What PeerLearn, Bolt and slack_sdk read from the environment: our settings (below), Bolt's SLACK_* (tokens,
# secrets, OAuth client and paths, SLACK_APP_TOKEN in its Socket Mode adapters) and slack_sdk's proxy and
# warning switches. Bolt and slack_sdk test `is not None`, so an empty SLACK_CLIENT_ID= (as `cp .env.example
# .env` leaves it) would turn on Bolt's own file-based OAuth: an empty variable must be no variable at all.
READ_PREFIXES = ("SLACK", "PEERLEARN_")
READ_NAMES = frozenset(
    {"DATABASE_URL", "PORT", "LOG_LEVEL", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}
    | {"SKIP_SLACK_SDK_WARNING"}
)


def is_read(name: str) -> bool:
    """Whether PeerLearn, Bolt or slack_sdk read this environment variable."""
    return name in READ_NAMES or name.startswith(READ_PREFIXES)


def load_environment(env_file: Path = Path(".env"), environ: MutableMapping[str, str] | None = None) -> None:
    """At start, before anything reads the environment: `.env` (in the current folder) fills in what the
    environment does not set, and a variable left empty (`SLACK_CLIENT_ID=`) is removed, i.e. not set."""
    from dotenv import dotenv_values

    environ = os.environ if environ is None else environ
    if env_file.is_file():
        for name, value in dotenv_values(env_file).items():
            if value is not None and not environ.get(name, "").strip():
                environ[name] = value
    for name in [name for name, value in environ.items() if is_read(name) and not value.strip()]:
        del environ[name]


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip().strip(":").lower() for part in value.split(",") if part.strip())


def _aliases(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in _csv(value):
        alias, sep, target = item.partition("=")
        if not sep or not alias.strip() or not target.strip():
            raise ConfigError(f"PEERLEARN_TAG_ALIASES: '{item}' is not alias=tag (e.g. k8s=kubernetes)")
        pairs[alias.strip().lstrip("#")] = target.strip().lstrip("#")
    return pairs


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got '{raw}'") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _days(env: Mapping[str, str], name: str, default: frozenset[int]) -> frozenset[int]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return days_from_names(raw)
    except ValueError as problem:
        raise ConfigError(f"{name}: {problem}; write days or ranges like mon-fri or sun-thu,sat") from None


def _fernet_keys(value: str) -> tuple[str, ...]:
    """PEERLEARN_ENCRYPTION_KEY: one Fernet key, or several comma-separated while rotating (newest first)."""
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if keys:
        from cryptography.fernet import Fernet

        for number, key in enumerate(keys, start=1):
            try:
                Fernet(key)
            except ValueError:
                raise ConfigError(
                    f"PEERLEARN_ENCRYPTION_KEY: key {number} is not a Fernet key (32 url-safe base64-encoded bytes). "
                    'Make one with: .venv/bin/python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())"'
                ) from None
    return keys


@dataclass(frozen=True)
class Settings:
    bot_token: str | None = None
    app_token: str | None = None
    signing_secret: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    log_level: str = "INFO"
    accept_reaction: str = "white_check_mark"
    helpful_reactions: tuple[str, ...] = ("+1", "bulb", "pray", "raised_hands", "100", "star")
    tag_aliases: dict[str, str] = field(
        default_factory=lambda: {
            "k8s": "kubernetes",
            "pg": "postgres",
            "postgresql": "postgres",
            "js": "javascript",
        }
    )
    route_top_n: int = 2
    daily_dm_cap: int = 3
    escalation_hours: int = 4
    work_start_hour: int = 9
    work_end_hour: int = 18
    work_days: frozenset[int] = MONDAY_TO_FRIDAY  # date.weekday() numbers (bot/workdays.py)
    # While the asker looks at similar earlier answers, routing waits this long (or until "Still need help").
    similar_grace_minutes: int = 10
    # users.info (time zone, bot, deactivated) is cached in `people` and asked again when older than this.
    profile_max_age_hours: int = 24
    # "Add to Slack" (OAuth, several workspaces): on when both are set; else the single SLACK_BOT_TOKEN.
    client_id: str | None = None
    client_secret: str | None = None
    scopes: tuple[str, ...] = DEFAULT_BOT_SCOPES
    redirect_uri: str | None = None
    # Fernet keys (comma-separated; the first encrypts, all decrypt) for Slack tokens stored by OAuth.
    encryption_keys: tuple[str, ...] = ()
    log_format: str = "text"

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        client_id, client_secret = text("SLACK_CLIENT_ID"), text("SLACK_CLIENT_SECRET")
        if bool(client_id) != bool(client_secret):
            missing = "SLACK_CLIENT_SECRET" if client_id else "SLACK_CLIENT_ID"
            raise ConfigError(
                f"Missing {missing}: 'Add to Slack' needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
                "(Basic Information page); leave both empty to use SLACK_BOT_TOKEN alone."
            )
        log_format = (text("PEERLEARN_LOG_FORMAT") or "text").lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"PEERLEARN_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got '{log_format}'")
        api_url = text("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not api_url.endswith("/"):
            api_url += "/"
        return cls(
            bot_token=text("SLACK_BOT_TOKEN"),
            app_token=text("SLACK_APP_TOKEN"),
            signing_secret=text("SLACK_SIGNING_SECRET"),
            database_url=text("DATABASE_URL") or DEFAULT_DATABASE_URL,
            slack_api_url=api_url,
            port=_int(env, "PORT", defaults.port, minimum=1),
            log_level=(text("LOG_LEVEL") or "INFO").upper(),
            accept_reaction=(text("PEERLEARN_ACCEPT_REACTION") or defaults.accept_reaction).strip(":"),
            helpful_reactions=_csv(text("PEERLEARN_HELPFUL_REACTIONS") or "") or defaults.helpful_reactions,
            tag_aliases=_aliases(text("PEERLEARN_TAG_ALIASES") or "") or defaults.tag_aliases,
            route_top_n=_int(env, "PEERLEARN_ROUTE_TOP_N", defaults.route_top_n, minimum=1),
            daily_dm_cap=_int(env, "PEERLEARN_DAILY_DM_CAP", defaults.daily_dm_cap, minimum=1),
            escalation_hours=_int(env, "PEERLEARN_ESCALATION_HOURS", defaults.escalation_hours, minimum=1),
            work_start_hour=_int(env, "PEERLEARN_WORK_START_HOUR", defaults.work_start_hour),
            work_end_hour=_int(env, "PEERLEARN_WORK_END_HOUR", defaults.work_end_hour),
            work_days=_days(env, "PEERLEARN_WORK_DAYS", defaults.work_days),
            similar_grace_minutes=_int(env, "PEERLEARN_SIMILAR_GRACE_MINUTES", defaults.similar_grace_minutes),
            profile_max_age_hours=_int(
                env, "PEERLEARN_PROFILE_MAX_AGE_HOURS", defaults.profile_max_age_hours, minimum=1
            ),
            client_id=client_id,
            client_secret=client_secret,
            scopes=_csv(text("SLACK_SCOPES") or "") or defaults.scopes,
            redirect_uri=text("SLACK_REDIRECT_URI"),
            encryption_keys=_fernet_keys(text("PEERLEARN_ENCRYPTION_KEY") or ""),
            log_format=log_format,
        )

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every missing variable among `names` (env variable names)."""
        values = {
            "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_APP_TOKEN": self.app_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
            "SLACK_CLIENT_ID": self.client_id,
            "SLACK_CLIENT_SECRET": self.client_secret,
        }
        missing = [name for name in names if not values.get(name)]
        if missing:
            raise ConfigError(
                f"Missing {', '.join(missing)}: add it to .env (`cp .env.example .env` makes one). See {SETUP_HELP}"
            )
