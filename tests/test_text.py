"""Parsing #tags and making user text safe to post."""

import signal
import time
from collections.abc import Callable

import pytest

from bot.text import clean, escape_mrkdwn, from_slack, has_words, normalize_tag, parse_tagged_text, truncate

ALIASES = {"k8s": "kubernetes", "pg": "postgres"}


def test_trailing_tags_are_split_from_the_question():
    parsed = parse_tagged_text("How do I vacuum a big table? #postgres #ops")
    assert parsed.text == "How do I vacuum a big table?"
    assert parsed.tags == ("postgres", "ops")


def test_tags_are_normalised_deduplicated_and_aliased():
    parsed = parse_tagged_text("Rolling restarts? #K8s #kubernetes #PG #Postgres.", ALIASES)
    assert parsed.tags == ("kubernetes", "postgres")


def test_inline_tags_stay_in_the_text():
    parsed = parse_tagged_text("How do I use #git bisect on a monorepo?")
    assert parsed.text == "How do I use #git bisect on a monorepo?"
    assert parsed.tags == ("git",)


def test_slack_channel_links_urls_and_entities_are_not_tags():
    parsed = parse_tagged_text("See <#C123|general> and https://x.org/a#frag &#39; ok")
    assert parsed.tags == ()


def test_tags_keep_dots_and_pluses():
    assert parse_tagged_text("Which flags? #c++ #node.js").tags == ("c++", "node.js")


@pytest.mark.parametrize("raw", ["", "#", "#-x", "#" + "a" * 41])
def test_unusable_tags_are_rejected(raw):
    assert normalize_tag(raw) is None


def test_only_tags_leaves_no_text():
    parsed = parse_tagged_text("#postgres #ops")
    assert parsed.text == ""
    assert parsed.tags == ("postgres", "ops")


def test_a_trailing_run_of_tags_ends_where_a_word_is_not_a_tag():
    parsed = parse_tagged_text("Why? #a x #b  #c.  ")
    assert parsed.text == "Why? #a x"
    assert parsed.tags == ("a", "b", "c")
    assert parse_tagged_text("  #a #b").text == ""


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def test_parsing_a_megabyte_of_tags_takes_linear_time():
    """/ask text is parsed before its ack (bot/asking.py): 10 times the tags may take about 10 times as long,
    never 100 (a quadratic parse spent 32 s on 149 KB). The big run is stopped once it is clearly not linear."""
    small = "Why? " + " ".join(f"#tag{i:06d}" for i in range(10_000))
    large = "Why? " + " ".join(f"#tag{i:06d}" for i in range(100_000))
    assert len(large) > 1_000_000
    small_time = min(_seconds(lambda: parse_tagged_text(small)) for _ in range(3))
    budget = 40 * small_time + 1.0  # linear is ~10x; quadratic would be ~100x

    def too_slow(*_: object) -> None:
        raise AssertionError(f"parsing 100k tags took over {budget:.1f}s; 10k took {small_time:.3f}s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        large_time = _seconds(lambda: parse_tagged_text(large))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert large_time / small_time < 30, (small_time, large_time)
    assert parse_tagged_text(large).text == "Why?"


def test_zero_width_and_bidi_controls_are_removed():
    assert clean("\u200b\u200d\ufeff") == ""
    assert clean("abc\u202edef") == "abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("🤔🤔🤔", False), ("?!", False), ("كيف أستخدم", True), ("a", False), ("ok", True), ("如何", True)],
)
def test_has_words_in_any_script(text, expected):
    assert has_words(text) is expected


@pytest.mark.parametrize(
    "hostile",
    [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<!here|here>",
        "<!subteam^S0123|@devs>",
        "<!CHANNEL>",
        "&lt;!channel&gt;",
    ],
)
def test_escaping_never_leaves_an_active_broadcast(hostile):
    escaped = escape_mrkdwn(f"please {hostile} look")
    assert "<!" not in escaped


def test_bare_broadcast_words_are_broken():
    escaped = escape_mrkdwn("ping @here and @channel and @everyone")
    for word in ("@here", "@channel", "@everyone"):
        assert word not in escaped


def test_real_user_mentions_and_channel_links_survive():
    text = "ask <@U123ABC|bob> or <@U9> in <#C42|ops> or <#G7>"
    assert escape_mrkdwn(text) == text


def test_angle_brackets_and_ampersands_are_escaped():
    assert escape_mrkdwn("a<b && c>d <script>") == "a&lt;b &amp;&amp; c&gt;d &lt;script&gt;"


def test_a_typed_link_stays_text_and_cannot_disguise_where_it_goes():
    assert escape_mrkdwn("<https://evil.example|innocent>") == "&lt;https://evil.example|innocent&gt;"
    assert escape_mrkdwn("see https://x.org/a?b=1&c=2") == "see https://x.org/a?b=1&amp;c=2"


@pytest.mark.parametrize(
    ("delivered", "written"),
    [
        ("Is a &lt; b &amp;&amp; c &gt; d?", "Is a < b && c > d?"),
        ("&amp;lt; is how you write &lt;", "&lt; is how you write <"),  # the person typed "&lt;" literally
        ("&lt;https://evil.example|innocent&gt;", "<https://evil.example|innocent>"),
        ("see <https://x.org/a?b=1&amp;c=2>", "see https://x.org/a?b=1&c=2"),
        ("<http://example.com|example.com> or <mailto:ana@x.org|ana@x.org>", "example.com or ana@x.org"),
        ("<https://x.org/docs|the docs>", "the docs (https://x.org/docs)"),
        ("ask <@U123|bob> or <@W9> in <#C42|ops>", "ask <@U123|bob> or <@W9> in <#C42|ops>"),
        ("<!here> <!channel|channel> <!everyone>", "@here @channel @everyone"),
        ("<!subteam^S1|@devs> <!subteam^S2>", "@devs @group"),
        ("at <!date^1392734382^{date_num}|2014-02-18>", "at 2014-02-18"),
    ],
)
def test_slack_text_is_stored_as_the_person_wrote_it(delivered, written):
    assert from_slack(delivered) == written


@pytest.mark.parametrize(
    "typed",
    ["Is a < b && c > d?", "&lt; is how you write <", "<https://evil.example|innocent>", "1 > 0 & <!here>"],
)
def test_typed_text_round_trips_through_slacks_escaping_and_ours(typed):
    """What Slack shows for our mrkdwn is what the person typed, whichever way it came in."""
    delivered = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends it
    shown = escape_mrkdwn(from_slack(delivered)).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown == typed.replace("@here", "@\u200bhere")
    assert escape_mrkdwn(typed) == escape_mrkdwn(from_slack(delivered))  # a modal's raw text renders the same


def test_truncate_adds_an_ellipsis_and_respects_the_limit():
    out = truncate("x" * 5000, 3000)
    assert len(out) == 3000
    assert out.endswith("…")


def test_truncate_never_splits_an_escape_or_a_mention():
    assert truncate("hello &amp; world", 8) == "hello…"
    assert truncate("hi <@U123|bob> there", 10) == "hi…"


def test_short_text_is_untouched():
    assert truncate("short", 10) == "short"


def test_leading_tags_are_split_from_the_text():
    parsed = parse_tagged_text("#git #ci Use git bisect to find the commit that broke a test")
    assert parsed.text == "Use git bisect to find the commit that broke a test"
    assert parsed.tags == ("git", "ci")
