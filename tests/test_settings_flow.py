"""Workspace settings from App Home, end to end on SQLite and PostgreSQL: an admin changes the escalation period
and the next question escalates on it; experts per question, the daily DM cap and the default working days
drive routing; every change is recorded and shown; someone Slack does not call an admin sees no settings and
changes nothing, however they send the form; bad values are refused under their fields. Slack is the emulator,
time is frozen (Monday 2026-11-23 10:00 UTC)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from slack_sdk import WebClient
from sqlalchemy import select, text

from bot import export
from bot.config import Settings
from bot.messages import home as home_messages
from bot.messages import settings as settings_messages
from bot.messages.settings import HOME_EDIT_SETTINGS, SETTINGS_MODAL, ChangeShown, SettingsShown
from bot.playground.emulator.fake_api import BOT_TOKEN, TEAM_ID
from bot.playground.emulator.signing import block_actions_payload, user_ref
from bot.playground.emulator.workspace import APP_ID, TEAM_DOMAIN
from bot.routing import escalation
from bot.workspace_settings import effective_settings, read_form
from models.expert import ensure_person
from models.migrate import alembic_config
from models.session import Store
from models.workspace_settings import SettingsChange, WorkspaceSetting
from tests.route_helpers import (
    GENERAL,
    add_people,
    bot_maker,
    declare,
    question_of,
    requests_of,
    routing_dms,
)
from tests.slack.fixtures import START

BERLIN = "Europe/Berlin"
EVERY_SETTING = ("escalation_hours", "route_top_n", "daily_dm_cap", "work_start_hour", "work_end_hour", "work_days")


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    world = bot.world
    world.add_user("U_ADMIN", tz=BERLIN, is_admin=True)
    world.add_user("U_OWNER", tz=BERLIN, is_owner=True)
    add_people(world, U_ADMIN=BERLIN, U_OWNER=BERLIN, U_MEMBER=BERLIN, U_ASKER=BERLIN)
    return bot


def open_home(world, user: str) -> dict[str, Any]:
    since = world.fake.mark()
    world.open_home(user)
    return world.fake.wait_for("views.publish", since=since, user_id=user).args["view"]


def home_text(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def action_ids(view: dict[str, Any]) -> set[str]:
    return {
        element["action_id"]
        for block in view["blocks"]
        for element in [*block.get("elements", []), block.get("accessory")]
        if isinstance(element, dict) and element.get("action_id")
    }


def open_settings_form(world, user: str) -> dict[str, Any]:
    """`user` clicks "Edit settings" on their Home tab; returns the form Slack shows them."""
    since = world.fake.mark()
    assert world.click(user, HOME_EDIT_SETTINGS, view_id=world.fake.home_view(user)["id"]).status == 200
    return world.fake.wait_for("views.open", since=since).args["view"]


def save(world, user: str, **values: Any) -> dict[str, Any] | None:
    """`user` changes `values` in their open settings form and presses Save; returns the errors shown, if any."""
    since = world.fake.mark()
    response = world.submit_view(user, SETTINGS_MODAL, values)
    assert response.status == 200, response.body
    ack = response.json() if response.body.startswith("{") else None
    if ack is None:
        world.fake.wait_for("views.publish", since=since, user_id=user)  # the tab, published again
    return (ack or {}).get("errors")


def stored(bot) -> tuple[dict[str, str], list[tuple[str, str, str, str]]]:
    """The workspace's settings and the record of their changes: (who, setting, old, new), oldest first."""
    with bot.store.session() as s:
        settings = {row.name: row.value for row in s.scalars(select(WorkspaceSetting))}
        changes = [
            (c.user_id, c.setting, c.old_value, c.new_value)
            for c in s.scalars(select(SettingsChange).order_by(SettingsChange.id))
        ]
    return settings, changes


def test_an_admin_changes_the_escalation_period_and_the_next_question_escalates_on_it(bot):
    world = bot.world
    add_people(world, U_FIRST=BERLIN, U_SECOND=BERLIN, U_THIRD=BERLIN)
    declare(world, "U_FIRST", "#postgres")
    declare(world, "U_SECOND", "#postgres")
    declare(world, "U_THIRD", "#postgres")

    view = open_home(world, "U_ADMIN")
    assert "Workspace settings" in home_text(view) and "*Escalation period*\\n4 hours" in home_text(view)
    form = open_settings_form(world, "U_ADMIN")
    assert form["callback_id"] == SETTINGS_MODAL
    inputs = {block["block_id"]: block["element"] for block in form["blocks"] if block["type"] == "input"}
    assert tuple(inputs) == EVERY_SETTING
    assert inputs["escalation_hours"]["initial_value"] == "4" and inputs["route_top_n"]["initial_value"] == "2"
    assert inputs["work_start_hour"]["initial_option"]["value"] == "9"
    assert [o["value"] for o in inputs["work_days"]["initial_options"]] == ["0", "1", "2", "3", "4"]
    assert "onboarding" not in home_text(form)  # nothing uses an onboarding channel yet

    assert save(world, "U_ADMIN", escalation_hours="1") is None
    assert stored(bot) == ({"escalation_hours": "1"}, [("U_ADMIN", "escalation_hours", "4", "1")])
    view = world.fake.home_view("U_ADMIN")
    assert "Settings saved." in home_text(view) and "*Escalation period*\\n1 hour" in home_text(view)
    assert "Mon 23 Nov 10:00 UTC, <@U_ADMIN>: escalation period 4 hours → 1 hour" in home_text(view)

    question = world.ask("U_ASKER", "How do I move a tablespace online? #postgres", GENERAL)
    stored_question = question_of(bot.store, question)
    assert stored_question.next_escalation_at == START + timedelta(hours=1)
    assert len(requests_of(bot.store, stored_question.id)) == 2
    assert bot.tick(START + timedelta(minutes=59)).steps == []
    [step] = bot.tick(START + timedelta(hours=1)).steps
    assert step.level == escalation.LEVEL_ROUND_2 and step.asked == ["U_THIRD"]

    # The change is in the workspace's export, who made it included.
    with bot.store.session() as s:
        out = io.StringIO()
        export.export_json(s, TEAM_ID, out, START)
    exported = json.loads(out.getvalue())
    assert [(r["name"], r["value"]) for r in exported["settings"]] == [("escalation_hours", "1")]
    [change] = exported["settings_changes"]
    assert (change["user_id"], change["setting"], change["old_value"], change["new_value"]) == (
        "U_ADMIN",
        "escalation_hours",
        "4",
        "1",
    )
    assert change["changed_at"] == START.isoformat()


def test_experts_per_question_the_daily_cap_and_the_default_working_days_drive_routing(bot):
    world = bot.world
    add_people(world, U_FIRST=BERLIN, U_SECOND=BERLIN, U_THIRD=BERLIN, U_FOURTH=BERLIN, U_OWN_DAYS=BERLIN)
    for expert in ("U_FIRST", "U_SECOND", "U_THIRD"):
        declare(world, expert, "#k8s")
    open_home(world, "U_OWNER")  # an owner is an admin too (users.info's is_owner)
    open_settings_form(world, "U_OWNER")
    assert save(world, "U_OWNER", route_top_n="1", daily_dm_cap="1") is None

    first = world.ask("U_ASKER", "Why is my pod pending? #k8s", GENERAL)
    [asked] = requests_of(bot.store, question_of(bot.store, first).id)
    second = world.ask("U_ASKER", "How do I drain a node? #k8s", GENERAL)
    [also_asked] = requests_of(bot.store, question_of(bot.store, second).id)
    assert also_asked != asked  # one question a day each

    # Working days: Tuesday to Saturday by default from now on; someone who ticked their own days keeps them.
    declare(world, "U_OWN_DAYS", "#helm")
    declare(world, "U_FOURTH", "#helm")
    with bot.store.session() as s:  # as ticked in their App Home (tests/test_home_flow.py)
        ensure_person(s, TEAM_ID, "U_OWN_DAYS").work_days = "01234"
    open_settings_form(world, "U_OWNER")
    assert save(world, "U_OWNER", route_top_n="2", work_days=["1", "2", "3", "4", "5"]) is None
    third = world.ask("U_ASKER", "How do I roll back a release? #helm", GENERAL)
    requests = requests_of(bot.store, question_of(bot.store, third).id)
    assert requests["U_OWN_DAYS"].sent_at == START  # a Monday: theirs
    assert requests["U_FOURTH"].send_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # Tuesday 09:00 in Berlin
    assert routing_dms(world, "U_FOURTH") == []
    home = home_text(open_home(world, "U_FOURTH"))
    assert "09:00–18:00, Tuesday to Saturday, in your time zone" in home
    assert "<@U_OWNER>: default working days Monday to Friday → Tuesday to Saturday" in home_text(
        open_home(world, "U_ADMIN")
    )
    assert [change[1] for change in stored(bot)[1]] == ["route_top_n", "daily_dm_cap", "route_top_n", "work_days"]


def test_someone_who_is_not_an_admin_sees_no_settings_and_cannot_change_them(bot):
    world = bot.world
    view = open_home(world, "U_MEMBER")
    assert "Workspace settings" not in home_text(view) and HOME_EDIT_SETTINGS not in action_ids(view)
    assert "Programme analytics" not in home_text(view)

    # A forged click on "Edit settings": the tab says no, no form opens.
    since, view = world.fake.mark(), world.fake.home_view("U_MEMBER")
    payload = block_actions_payload(
        team={"id": TEAM_ID, "domain": TEAM_DOMAIN},
        user=user_ref("U_MEMBER", "member", TEAM_ID),
        api_app_id=APP_ID,
        actions=[{"action_id": HOME_EDIT_SETTINGS, "block_id": "home_settings", "type": "button", "action_ts": "1.0"}],
        trigger_id=world.fake.new_trigger_id("U_MEMBER"),
        container={"type": "view", "view_id": view["id"]},
        view=view,
    )
    assert world.sender.interactivity(payload).status == 200
    world.settle()
    assert world.fake.calls_to("views.open", since=since) == []
    refused = world.fake.home_view("U_MEMBER")
    assert settings_messages.NOT_AN_ADMIN in home_text(refused) and HOME_EDIT_SETTINGS not in action_ids(refused)

    # The form itself, opened for them somehow, and submitted: refused, nothing stored.
    client = WebClient(base_url=world.fake.base_url, token=BOT_TOKEN)
    with bot.store.session() as s:
        current = effective_settings(s, TEAM_ID, Settings())
    client.views_open(trigger_id=world.fake.new_trigger_id("U_MEMBER"), view=settings_messages.settings_modal(current))
    assert save(world, "U_MEMBER", escalation_hours="1") == {"escalation_hours": settings_messages.NOT_AN_ADMIN}
    assert stored(bot) == ({}, [])


def test_an_admin_demoted_while_the_form_is_open_changes_nothing(bot):
    world = bot.world
    open_home(world, "U_ADMIN")
    open_settings_form(world, "U_ADMIN")
    since = world.fake.mark()
    assert save(world, "U_ADMIN", daily_dm_cap="5") is None  # minutes after opening the tab: no need to ask Slack
    assert world.fake.calls_to("users.info", since=since) == []

    open_settings_form(world, "U_ADMIN")
    world.fake.users["U_ADMIN"].is_admin = False  # Slack: no longer an admin
    world.clock.advance(timedelta(minutes=11))  # what PeerLearn knew is too old to decide: Slack is asked
    assert save(world, "U_ADMIN", daily_dm_cap="9") == {"escalation_hours": settings_messages.NOT_AN_ADMIN}
    assert world.fake.calls_to("users.info", user="U_ADMIN", since=since)
    assert stored(bot) == ({"daily_dm_cap": "5"}, [("U_ADMIN", "daily_dm_cap", "3", "5")])
    view = open_home(world, "U_ADMIN")
    assert "Workspace settings" not in home_text(view) and "Programme analytics" not in home_text(view)


def test_bad_values_are_refused_under_their_fields_and_nothing_is_saved(bot):
    world = bot.world
    open_home(world, "U_ADMIN")
    open_settings_form(world, "U_ADMIN")
    errors = save(
        world,
        "U_ADMIN",
        escalation_hours="0",
        route_top_n="<!here> two",
        daily_dm_cap="1000",
        work_start_hour="18",
        work_end_hour="18",
    )
    assert errors == {
        "escalation_hours": "Write a number of hours from 1 to 168.",
        "route_top_n": "Write a whole number from 1 to 10.",
        "daily_dm_cap": "Write a whole number from 1 to 50.",
        "work_end_hour": "The working day can't end at the hour it starts.",
    }
    assert world.fake.open_modals("U_ADMIN")[-1]["callback_id"] == SETTINGS_MODAL  # the form stays open
    assert stored(bot) == ({}, [])

    assert save(world, "U_ADMIN", escalation_hours=" 12 ", work_start_hour="22", work_end_hour="6") is None
    assert stored(bot)[0] == {"escalation_hours": "12", "work_start_hour": "22", "work_end_hour": "6"}
    assert "*Default working time*\\n22:00–06:00, Monday to Friday" in home_text(world.fake.home_view("U_ADMIN"))


def test_saving_what_applies_already_records_nothing(bot):
    world = bot.world
    open_home(world, "U_ADMIN")
    open_settings_form(world, "U_ADMIN")
    assert save(world, "U_ADMIN") is None
    assert stored(bot) == ({}, [])
    assert settings_messages.UNCHANGED in home_text(world.fake.home_view("U_ADMIN"))


def test_the_form_is_checked_whole_on_the_server_too():
    """What Slack's client would not send (no day ticked, a forged option) is refused all the same."""
    good = {"escalation_hours": "4", "route_top_n": "2", "daily_dm_cap": "3", "work_start_hour": "9"}
    values, errors = read_form({**good, "work_end_hour": "18", "work_days": []})
    assert errors == {"work_days": settings_messages.NO_DAYS} and values["escalation_hours"] == 4
    _, errors = read_form({**good, "work_end_hour": "25", "work_days": ["0", "7"]})
    assert errors == {"work_end_hour": "Pick an hour from the list.", "work_days": settings_messages.NO_DAYS}
    values, errors = read_form({**good, "work_end_hour": "18", "work_days": ["6", "0"]})
    assert errors == {} and values["work_days"] == frozenset({6, 0})
    _, errors = read_form({})
    assert set(errors) == set(EVERY_SETTING)


# --- the Home section, pure --------------------------------------------------------------------------------


def test_the_admin_section_fits_a_busy_home_within_100_blocks_and_escapes_what_it_shows():
    from bot import stats
    from bot.messages.search import Searched
    from bot.messages.suggestions import SimilarItem

    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    line = home_messages.QuestionLine("q", "C1", ("git",), 1, "U2")
    tags = [stats.TagFigures(f"t{i}", stats.Figures(asked=3)) for i in range(40)]
    gaps = [stats.Gap(f"g{i}", 3, 3, 0, 3.0) for i in range(10)]
    trend = [stats.Week(now - timedelta(weeks=w), stats.Figures(asked=2)) for w in range(8)]
    report = stats.Report(
        "T1", now - timedelta(days=30), now, stats.Figures(asked=120), tags=tags, gaps=gaps, trend=trend
    )
    found = SimilarItem("question", 3, "Why?", "U2", "Because", "U3", "https://x/p1")
    changes = [ChangeShown("U9", now, "escalation_hours", "<!here>", str(h)) for h in range(1, 9)]
    data = home_messages.HomeData(  # every list as long as App Home ever shows it
        user_id="U1",
        now=now,
        open_questions=[line] * 5,
        more_open=True,
        routed=[line] * 5,
        on_topics=[line] * 5,
        topics=["git"],
        admin=report,
        workspace_settings=SettingsShown(Settings(), changes),
        notice="note",
        search=Searched("why", [found] * 10),
    )
    view = home_messages.home_view(data)
    assert len(view["blocks"]) <= 100
    assert HOME_EDIT_SETTINGS in action_ids(view) and "Programme analytics" in home_text(view)
    assert home_text(view).count("escalation period &lt;!here&gt; →") == settings_messages.MAX_CHANGES_SHOWN
    assert "<!here>" not in home_text(view) and "&lt;!here&gt;" in home_text(view)


# --- the migration -----------------------------------------------------------------------------------------


def test_a_workspaces_own_escalation_hours_become_its_setting(database_url):
    store = Store.from_url(database_url)
    config = alembic_config(store.engine)
    try:
        command.downgrade(config, "0015@-1")  # as the database was before workspace settings
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO workspaces (team_id, timezone, escalation_hours, active, created_at) VALUES "
                    "('T1', 'UTC', 2, :yes, :at), ('T2', 'UTC', NULL, :yes, :at)"
                ),
                {"yes": True, "at": START.replace(tzinfo=None)},
            )
        command.upgrade(config, "heads")
        with store.session() as s:
            rows = s.scalars(select(WorkspaceSetting)).all()
            assert [(r.team_id, r.name, r.value) for r in rows] == [("T1", "escalation_hours", "2")]
        command.downgrade(config, "0015@-1")
        with store.engine.connect() as conn:
            hours = dict(conn.execute(text("SELECT team_id, escalation_hours FROM workspaces ORDER BY team_id")).all())
        assert hours == {"T1": 2, "T2": None}
    finally:
        command.upgrade(config, "heads")
        store.dispose()
