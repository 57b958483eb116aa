"""Parsing what people mean by /teach."""

from datetime import timedelta

import pytest

from bot.config import Settings
from bot.experts import InvalidTeach, parse_duration, parse_teach

SETTINGS = Settings()


@pytest.mark.parametrize(
    ("text", "kind", "tags"),
    [
        ("", "form", ()),
        ("  \u200b ", "form", ()),
        ("help", "help", ()),
        ("list", "list", ()),
        ("resume", "resume", ()),
        ("#Postgres #k8s", "declare", ("postgres", "kubernetes")),
        ("remove #postgres k8s", "remove", ("postgres", "kubernetes")),
    ],
)
def test_intents(text, kind, tags):
    intent = parse_teach(text, SETTINGS)
    assert (intent.kind, intent.tags) == (kind, tags)


def test_a_lesson_is_text_with_tags():
    intent = parse_teach("#git Use git bisect to find the commit that broke a test", SETTINGS)
    assert intent.kind == "lesson"
    assert intent.tags == ("git",)
    assert intent.text == "Use git bisect to find the commit that broke a test"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)), ("12h", timedelta(hours=12)), ("3", timedelta(days=3))],
)
def test_pause_durations(raw, expected):
    assert parse_teach(f"pause {raw}", SETTINGS).pause == expected
    assert parse_duration(raw) == expected


def test_pause_is_capped_at_a_year_and_defaults_to_a_week():
    assert parse_duration("9999d") == timedelta(days=365)
    assert parse_teach("pause", SETTINGS).pause == timedelta(days=7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Use git bisect", "at least one #tag"),
        ("remove", "Name the topics"),
        ("pause forever", "duration"),
        ("pause 0d", "positive"),
        ("#git 🤔🤔", "few words"),
        ("#git " + "x" * 5000, "characters long"),
        (" ".join(f"#t{i}" for i in range(21)), "That would make 21 topics"),
        (" ".join(f"#t{i}" for i in range(11)) + " Use git bisect", "That's 11 tags; a lesson can have at most 10"),
    ],
)
def test_mistakes_are_explained(text, message):
    with pytest.raises(InvalidTeach, match=message):
        parse_teach(text, SETTINGS)
