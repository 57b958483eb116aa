"""A client acting for one workspace, and workspaces whose token Slack refused.

`WorkspaceClient` is a WebClient with the arguments that make its calls for one workspace; `WorkspaceClients`
gives one per workspace from outside a request (a tick, the CLI), from `token_for` (each installation's bot
token with "Add to Slack"; without it, the client's single token), and each workspace's URL, asked once.

Workspaces whose token Slack refused are disabled when it does, and enabled again when the token works again.

A disabled workspace gets no routing, morning DMs or digests. Slack refusing a token (invalid_auth,
token_revoked, account_inactive…) disables its workspace; the `tokens` tick (`TokenRecheck`) asks Slack
(auth.test) whether it works again, at start and every few minutes while a workspace is disabled, and
enables the workspace when it does: a transient refusal, a reactivated bot user, or SLACK_BOT_TOKEN replaced
and the app restarted. With "Add to Slack" a reinstall also enables it (bot/runtime/oauth.py). Each change is logged
once, when it happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.metrics import ObservedWebClient
from bot.services import Services
from bot.slack_errors import AUTH_ERRORS, error_code
from models.workspace import Workspace, disable_workspace, enable_workspace

logger = logging.getLogger("peerlearn.workspaces")

RECHECK_MINUTES = 5

TokenLookup = Callable[[str], str | None]  # team_id -> that workspace's bot token


@dataclass(frozen=True)
class WorkspaceClient:
    """A WebClient and the arguments that make its calls for one workspace (its token, with "Add to Slack").

    In a listener, Bolt's client already carries the workspace's token; a tick passes it per workspace."""

    client: WebClient
    auth: Mapping[str, Any] = field(default_factory=dict)


class WorkspaceClients:
    """How to reach each workspace from outside a request: `clients(team_id)` is a client acting for it (its
    bot token from `token_for`; without one, the client's single token), and `base_url(team_id)` its URL,
    asked once (one auth.test per workspace per tick)."""

    def __init__(self, client: WebClient, token_for: TokenLookup | None = None) -> None:
        self.client = client
        self.token_for = token_for
        self._urls: dict[str, str | None] = {}

    def __call__(self, team_id: str) -> WorkspaceClient:
        token = self.token_for(team_id) if self.token_for else None
        return WorkspaceClient(self.client, {"token": token} if token else {})

    def base_url(self, team_id: str) -> str | None:
        """The workspace's URL, which links to its messages are built from; None when Slack won't say."""
        if team_id not in self._urls:
            try:
                self._urls[team_id] = self.client.auth_test(**self(team_id).auth).get("url")
            except SlackApiError as exc:
                logger.warning("auth.test failed for %s (%s); links to messages are left out", team_id, error_code(exc))
                self._urls[team_id] = None
            except Exception:
                logger.exception("auth.test failed for %s; links to messages are left out", team_id)
                self._urls[team_id] = None
        return self._urls[team_id]


def disable_refused_workspace(services: Services, team_id: str | None, method: str, code: str) -> list[str]:
    """Slack said the token is dead (invalid_auth, token_revoked, account_inactive…): stop using it.

    The workspace is marked inactive with the reason; the warning is logged once, when it changes. Without a
    team (a client outside a request), the single SLACK_BOT_TOKEN serves every workspace, so all of them are
    disabled; in OAuth mode nothing is guessed. Returns the workspaces disabled now.
    """
    disabled: list[str] = []
    try:
        with services.store.session() as session:
            if team_id:
                teams = [team_id]
            elif services.settings.oauth_enabled:
                logger.warning("Slack refused a token (%s on %s) outside any workspace's request", code, method)
                return []
            else:
                teams = list(session.scalars(select(Workspace.team_id).where(Workspace.active.is_(True))))
            for team in teams:
                workspace = session.get(Workspace, team)
                if workspace is not None and not workspace.active:
                    continue
                disable_workspace(session, team, code)
                disabled.append(team)
    except SQLAlchemyError:
        logger.exception("could not record that Slack refused the token of workspace %s", team_id)
        return []
    for team in disabled:
        metrics.WORKSPACES_DISABLED.labels(code).inc()
        logger.warning(
            "workspace %s disabled: Slack refused its token (%s on %s); PeerLearn checks it every %d minutes and "
            "enables the workspace once it works (replace SLACK_BOT_TOKEN and restart, or reinstall PeerLearn there)",
            team,
            code,
            method,
            RECHECK_MINUTES,
        )
    return disabled


def refused_workspaces(services: Services) -> list[str]:
    """Workspaces disabled because Slack refused their token (not uninstalled ones)."""
    with services.store.session() as session:
        query = select(Workspace.team_id).where(Workspace.active.is_(False), Workspace.disabled_reason.in_(AUTH_ERRORS))
        return list(session.scalars(query.order_by(Workspace.team_id)))


def enable(services: Services, teams: list[str], why: str) -> None:
    with services.store.session() as session:
        enabled = [team for team in teams if enable_workspace(session, team)]
    for team in enabled:
        logger.info("workspace %s enabled again: %s", team, why)


def auth_test(client: WebClient, token: str) -> tuple[dict[str, Any] | None, str | None]:
    """Ask Slack what `token` is: (its identity, None), or (None, why not): Slack's error code, or the
    exception when Slack could not be asked (unreachable after slack_sdk's retries, a timeout)."""
    checker = ObservedWebClient.like(client)  # counted in /metrics; a refusal is handled by the caller
    try:
        return dict(checker.auth_test(token=token).data), None  # type: ignore[arg-type]
    except SlackApiError as error:
        return None, error_code(error)
    except Exception as error:
        return None, error.__class__.__name__


class TokenRecheck:
    """The `tokens` tick (bot/runtime/scheduler.py): does a refused token work again?

    Single SLACK_BOT_TOKEN: checked at the first run (at start), then while a workspace is disabled because
    Slack refused it. When it works, those workspaces are enabled again, and so is the token's own workspace
    whatever disabled it (PeerLearn is installed there again); when Slack refuses it, every workspace is
    disabled. "Add to Slack": each workspace disabled by a refusal is checked with its installation's token.
    """

    def __init__(self) -> None:
        self.checked = False  # the single token has had an answer from Slack in this process

    def __call__(
        self,
        services: Services,
        client: WebClient,
        now: datetime,
        *,
        token_for: TokenLookup | None = None,
    ) -> None:
        refused = refused_workspaces(services)
        if services.settings.oauth_enabled:
            for team in refused:
                token = token_for(team) if token_for is not None else None
                if token is None:  # uninstalled meanwhile: only a reinstall brings it back
                    continue
                identity, problem = auth_test(client, token)
                if identity is not None:
                    enable(services, [team], "Slack accepts its installation's token again (auth.test)")
                elif problem not in AUTH_ERRORS:
                    logger.info("could not check the token of workspace %s (%s); trying again later", team, problem)
            return
        token = services.settings.bot_token
        if token is None or (self.checked and not refused):
            return
        identity, problem = auth_test(client, token)
        if identity is None and problem not in AUTH_ERRORS:
            logger.info("could not check SLACK_BOT_TOKEN (%s); trying again in %d minutes", problem, RECHECK_MINUTES)
            return
        first_answer, self.checked = not self.checked, True
        if identity is None:
            if not disable_refused_workspace(services, None, "auth.test", str(problem)) and first_answer:
                logger.warning(
                    "Slack refuses SLACK_BOT_TOKEN (%s): PeerLearn can't act in Slack until it works; it checks again "
                    "every %d minutes (replace the token and restart)",
                    problem,
                    RECHECK_MINUTES,
                )
            return
        own = identity.get("team_id")
        teams = refused + ([own] if isinstance(own, str) and own not in refused else [])
        enable(services, teams, "Slack accepts SLACK_BOT_TOKEN (auth.test)")
