"""The workspace's settings as its admins see them: their section of the App Home tab (the settings, the last
changes, "Edit settings"), the settings form (a modal, one input per setting, its block id the setting's name),
what each setting and value is called, and the errors and notes.

Values reach these builders as stored (bot/workspace_settings.py checked them: digits only) and are escaped
once all the same, as any text shown in mrkdwn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Settings
from bot.messages.blocks import (
    Block,
    actions,
    button,
    checkboxes,
    context,
    fields_section,
    header,
    mention,
    modal,
    plain,
    section,
    static_select,
)
from bot.messages.onboarding import NAMES as ONBOARDING_NAMES
from bot.messages.onboarding import change_value_text
from bot.messages.working_time import day_choices, days_text, hour_label, hours_text
from bot.text import escape_mrkdwn
from bot.workdays import days_from_text

HOME_EDIT_SETTINGS = "home_edit_settings"  # the admin section's button: opens the settings form
SETTINGS_MODAL = "workspace_settings"  # the form's callback_id
SETTINGS_ACTION = "value"  # every input's action_id (its block_id is the setting's name)
FIRST_FIELD = "escalation_hours"  # where an error about the whole form is shown

NAMES = {
    "escalation_hours": "escalation period",
    "route_top_n": "experts asked per question",
    "daily_dm_cap": "questions per expert per day",
    "work_start_hour": "default start of the working day",
    "work_end_hour": "default end of the working day",
    "work_days": "default working days",
    **ONBOARDING_NAMES,
}
LABELS = {
    "escalation_hours": "Escalation period, in hours",
    "route_top_n": "Experts asked per question",
    "daily_dm_cap": "Questions per expert per day, at most",
    "work_start_hour": "Default working hours: from",
    "work_end_hour": "Default working hours: to",
    "work_days": "Default working days",
}
HINTS = {
    "escalation_hours": "An unanswered question goes to the next experts after this many hours of the asked experts' "
    "working time (nights, weekends and days off don't count), and its thread gets a gentle bump after as many "
    "again. From 1 to 168 (a week).",
    "route_top_n": "How many experts are sent a DM about a question, and as many more when it escalates. From 1 to 10.",
    "daily_dm_cap": "Nobody gets more routed questions than this in a day. From 1 to 50.",
    "work_days": "For everyone who hasn't chosen their own hours and days in App Home, in their own time zone.",
}
MAX_CHANGES_SHOWN = 5

NOT_AN_ADMIN = "Only the workspace's admins and owners can change PeerLearn's settings."
ADMIN_UNCONFIRMED = "Slack couldn't confirm that you are an admin just now, so nothing was changed. Try again."
NO_DAYS = "Tick at least one working day."
SAME_HOURS = "The working day can't end at the hour it starts."
SAVED = "Settings saved."
UNCHANGED = "Nothing was changed."


def number_error(name: str) -> str:
    """The error under a whole-number field (or an hour select) whose value is not allowed."""
    if name == "escalation_hours":
        return "Write a number of hours from 1 to 168."
    if name == "route_top_n":
        return "Write a whole number from 1 to 10."
    if name == "daily_dm_cap":
        return "Write a whole number from 1 to 50."
    return "Pick an hour from the list."


def value_text(name: str, stored: str) -> str:
    """A setting's value (as stored) as people read it: "4 hours", "2 experts", "09:00", "Sunday to Thursday"."""
    if name in ONBOARDING_NAMES:
        return change_value_text(name, stored)
    if name == "work_days":
        days = days_from_text(stored)
        return days_text(days) if days else escape_mrkdwn(stored)
    if not stored.isdigit():
        return escape_mrkdwn(stored)
    number = int(stored)
    if name == "escalation_hours":
        return "1 hour" if number == 1 else f"{number} hours"
    if name == "route_top_n":
        return "1 expert" if number == 1 else f"{number} experts"
    if name == "daily_dm_cap":
        return f"{number} a day"
    return hour_label(number)


@dataclass(frozen=True)
class ChangeShown:
    user_id: str
    changed_at: datetime
    setting: str
    old_value: str
    new_value: str


@dataclass(frozen=True)
class SettingsShown:
    """The admin section's data: the settings that apply, and the latest changes (newest first)."""

    current: Settings
    changes: Sequence[ChangeShown] = field(default_factory=list)


def change_line(change: ChangeShown) -> str:
    name = NAMES.get(change.setting, escape_mrkdwn(change.setting))
    return (
        f"• {change.changed_at:%a %d %b %H:%M} UTC, {mention(change.user_id)}: {name} "
        f"{value_text(change.setting, change.old_value)} → {value_text(change.setting, change.new_value)}"
    )


def settings_section(shown: SettingsShown) -> list[Block]:
    """The App Home section only admins see."""
    s = shown.current
    content = [
        header("Workspace settings"),
        fields_section(
            f"*Escalation period*\n{value_text('escalation_hours', str(s.escalation_hours))}",
            f"*Experts asked per question*\n{s.route_top_n}",
            f"*Questions per expert per day*\nat most {s.daily_dm_cap}",
            f"*Default working time*\n{hours_text(s.work_start_hour, s.work_end_hour)}, {days_text(s.work_days)}",
        ),
    ]
    if shown.changes:
        lines = [change_line(change) for change in shown.changes[:MAX_CHANGES_SHOWN]]
        content.append(section("*Last changes*\n" + "\n".join(lines)))
    content += [
        actions(button("Edit settings", HOME_EDIT_SETTINGS), block_id="home_settings"),
        context(
            "Only the workspace's admins and owners see this. People's own working hours and days win over the "
            "defaults."
        ),
    ]
    return content


def _number_input(name: str, value: int) -> Block:
    return {
        "type": "input",
        "block_id": name,
        "label": plain(LABELS[name]),
        "hint": plain(HINTS[name]),
        "element": {
            "type": "plain_text_input",
            "action_id": SETTINGS_ACTION,
            "initial_value": str(value),
            "max_length": 10,
        },
    }


def _hour_input(name: str, hours: range, value: int) -> Block:
    choices = {str(hour): hour_label(hour) for hour in hours}
    return {
        "type": "input",
        "block_id": name,
        "label": plain(LABELS[name]),
        "element": static_select(SETTINGS_ACTION, choices, str(value), placeholder="Hour"),
    }


def settings_modal(current: Settings) -> Block:
    """The settings form, filled with the settings that apply now."""
    days = {
        "type": "input",
        "block_id": "work_days",
        "label": plain(LABELS["work_days"]),
        "hint": plain(HINTS["work_days"]),
        "element": checkboxes(SETTINGS_ACTION, day_choices(), [str(day) for day in current.work_days]),
    }
    return modal(
        SETTINGS_MODAL,
        "PeerLearn settings",
        "Save",
        [
            section("These apply to everyone in the workspace. Each change is recorded, with who made it."),
            _number_input("escalation_hours", current.escalation_hours),
            _number_input("route_top_n", current.route_top_n),
            _number_input("daily_dm_cap", current.daily_dm_cap),
            _hour_input("work_start_hour", range(24), current.work_start_hour),
            _hour_input("work_end_hour", range(1, 25), current.work_end_hour),
            days,
        ],
    )
