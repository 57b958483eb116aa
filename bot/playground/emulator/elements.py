"""Interactive Block Kit elements as a person uses them: the ones a surface shows, and what choosing a value
puts into a block_actions payload or a modal's submitted state (as Slack's client would)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bot.playground.emulator.workspace import Json

# Where an element's chosen value goes in block_actions / view state, by element type.
SELECTED_KEY = {
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "overflow": "selected_option",
    "multi_static_select": "selected_options",
    "checkboxes": "selected_options",
}


def interactive(blocks: list[Json]) -> Iterator[tuple[Json, Json]]:
    """(block, interactive element) pairs, as Slack would report them in block_actions."""
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory"), block.get("element")]:
            if isinstance(element, dict) and element.get("action_id"):
                yield block, element


def _option(element: Json, value: Any) -> Json:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options", []))
    for option in options:
        if option.get("value") == value:
            return dict(option)
    raise AssertionError(f"{element['action_id']} has no option {value!r}; options: {[o['value'] for o in options]}")


def _initial(element: Json) -> Any:
    """The value an element shows before anyone touches it (initial_value, initial_conversation, …)."""
    for key, value in element.items():
        if key.startswith("initial_") and value not in (None, "", []):
            if isinstance(value, dict):  # an initial option
                return value.get("value")
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return [option.get("value") for option in value]
            return value
    return None


def choice_fields(element: Json, value: Any) -> Json:
    """The state / action fields for choosing `value` in `element` (a text, a date, an option value, …)."""
    key = SELECTED_KEY.get(element["type"])
    if key is None:
        return {"value": value}
    if key == "selected_option":
        return {key: _option(element, value)}
    if key == "selected_options":
        return {key: [_option(element, v) for v in value]}
    return {key: value}


def filled(modal: Json, values: Mapping[str, Any] | None) -> tuple[dict[str, Json], dict[str, str]]:
    """The view_submission's `state.values` for `values` (by an input's block_id or action_id, or
    `{block_id: {action_id: value}}`), and the required inputs left empty (block_id → label)."""
    values = dict(values or {})
    state: dict[str, Json] = {}
    missing: dict[str, str] = {}
    for block in modal["blocks"]:
        if block.get("type") != "input":
            continue
        element, block_id = block["element"], block.get("block_id", "")
        action_id = element.get("action_id", "")
        given = values.pop(block_id, None)
        given = given.get(action_id) if isinstance(given, dict) else given
        given = values.pop(action_id, given)
        if given in (None, "", []):  # what Slack pre-filled stays selected unless the user changed it
            given = _initial(element)
        if given in (None, "", []) and not block.get("optional", False):
            missing[block_id] = block["label"]["text"]
        chosen = choice_fields(element, given) if given not in (None, "", []) else {"value": None}
        state[block_id] = {action_id: {"type": element["type"], **chosen}}
    if values:
        raise AssertionError(f"Modal {modal['callback_id']!r} has no input(s) {sorted(values)}")
    return state, missing
