"""A workspace's settings, changed by its admins from App Home.

Routing, escalation and the daily DM cap read a workspace's *effective* settings (`effective_settings`): the
environment's (PEERLEARN_*, bot/config.py), which every workspace starts from, overridden by what its admins
saved (models/workspace_settings.py). RANGES and WORK_DAYS are what may be changed, and to what.

Who may change them: the people Slack says are the workspace's admins or owners (`users.info`: is_admin,
is_owner, is_primary_owner), as PeerLearn stored it less than ADMIN_FRESH_FOR ago (opening App Home asks
Slack), else Slack is asked again there and then (`confirmed_admin`); never anything a request says of itself.
A change is checked whole before anything is stored (`read_form`), and every setting it changes is recorded
(`save_settings`): who, when, from what (the value that applied then) to what.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.messages.settings import NO_DAYS, SAME_HOURS, number_error
from bot.services import Services
from bot.slack_errors import SLACK_FAILURES, error_code
from bot.workdays import DAYS_IN_WEEK, days_as_text, days_from_text
from models.expert import Person, remember_profile
from models.workspace_settings import SettingsChange, lock_settings, store_setting, stored_settings

logger = logging.getLogger("peerlearn.settings")

# The whole-number settings, each a Settings field, and the values it may take.
RANGES = {
    "escalation_hours": (1, 168),
    "route_top_n": (1, 10),
    "daily_dm_cap": (1, 50),
    "work_start_hour": (0, 23),
    "work_end_hour": (1, 24),
}
WORK_DAYS = "work_days"
EDITABLE = (*RANGES, WORK_DAYS)  # in the form's order
ADMIN_FRESH_FOR = timedelta(minutes=10)

Value = int | frozenset[int]


def value_as_text(name: str, value: Value) -> str:
    """A setting's value as stored (and recorded in settings_changes)."""
    return days_as_text(value) if isinstance(value, frozenset) else str(value)


def value_from_text(name: str, text: str) -> Value:
    """A stored value; ValueError when it is not one the setting may take."""
    if name == WORK_DAYS:
        days = days_from_text(text)
        if days is None:
            raise ValueError(f"{text!r} names no working days")
        return days
    low, high = RANGES[name]
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {text!r}")
    return int(text)


def effective_settings(session: Session, team_id: str, defaults: Settings) -> Settings:
    """The settings that apply in this workspace: `defaults` (the environment's) with what its admins saved."""
    changed: dict[str, Value] = {}
    for name, text in stored_settings(session, team_id).items():
        if name not in EDITABLE:
            continue
        try:
            changed[name] = value_from_text(name, text)
        except ValueError:
            logger.warning("workspace %s: ignoring the stored %s %r", team_id, name, text)
    settings = replace(defaults, **changed)  # type: ignore[arg-type]
    if settings.work_start_hour == settings.work_end_hour:  # only one end saved, and it meets the default
        settings = replace(settings, work_start_hour=defaults.work_start_hour, work_end_hour=defaults.work_end_hour)
    return settings


def current_values(settings: Settings) -> dict[str, Value]:
    return {name: getattr(settings, name) for name in EDITABLE}


def read_form(form: Mapping[str, str | Sequence[str] | None]) -> tuple[dict[str, Value], dict[str, str]]:
    """The values of the settings form (by setting name: the text typed or the option chosen, the days ticked),
    and what is wrong with them, by setting name (nothing may be saved while anything is)."""
    values: dict[str, Value] = {}
    errors: dict[str, str] = {}
    for name in RANGES:
        raw = form.get(name)
        text = raw.strip() if isinstance(raw, str) else ""
        try:
            values[name] = value_from_text(name, text)
        except ValueError:
            errors[name] = number_error(name)
    ticked = form.get(WORK_DAYS)
    days = ticked if isinstance(ticked, Sequence) and not isinstance(ticked, str) else []
    if days and all(day.isascii() and day.isdigit() and int(day) < DAYS_IN_WEEK for day in days):
        values[WORK_DAYS] = frozenset(int(day) for day in days)
    else:
        errors[WORK_DAYS] = NO_DAYS
    if "work_start_hour" in values and values.get("work_start_hour") == values.get("work_end_hour"):
        errors["work_end_hour"] = SAME_HOURS
    return values, errors


def save_settings(
    session: Session, team_id: str, user_id: str, values: Mapping[str, Value], defaults: Settings, now: datetime
) -> list[SettingsChange]:
    """Store the settings in `values` (checked by read_form) that differ from those that apply now, each
    change recorded; returns the changes (none: nothing differed)."""
    lock_settings(session, team_id, now)
    current = current_values(effective_settings(session, team_id, defaults))
    changes = []
    for name in EDITABLE:
        if name not in values or values[name] == current[name]:
            continue
        old, new = value_as_text(name, current[name]), value_as_text(name, values[name])
        store_setting(session, team_id, name, new, now)
        change = SettingsChange(
            team_id=team_id, user_id=user_id, changed_at=now, setting=name, old_value=old, new_value=new
        )
        session.add(change)
        changes.append(change)
    session.flush()
    if changes:
        logger.info("workspace %s: %s changed %s", team_id, user_id, ", ".join(c.setting for c in changes))
    return changes


def confirmed_admin(client: WebClient, services: Services, team_id: str, user_id: str) -> bool | None:
    """Whether Slack says this person is one of the workspace's admins or owners: from what PeerLearn stored
    of `users.info` less than ADMIN_FRESH_FOR ago, else from Slack now. None: Slack could not be asked."""
    now = services.clock.now()
    with services.store.session() as session:
        person = session.get(Person, (team_id, user_id))
        fetched = person.profile_fetched_at if person is not None else None
        if person is not None and fetched is not None and now - fetched < ADMIN_FRESH_FOR:
            return person.is_admin and not person.deleted
    try:
        user = client.users_info(user=user_id)["user"]
    except SLACK_FAILURES as exc:
        logger.warning("users.info for %s failed: %s; not taken for an admin", user_id, error_code(exc))
        return None
    with services.store.session() as session:
        person = remember_profile(session, team_id, user, now)
        return person.is_admin and not person.deleted
