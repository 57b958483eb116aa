"""The playground page in headless Chromium, as a person uses it: ask, get routed to the experts by DM,
answer in the thread as an expert, accept with ✅, use the App Home, post the digest; a modal and an
ephemeral message. Each step is screenshotted into test-artifacts/playground/ (git-ignored).

Chromium is Debian's package (`make test` and `.ci/run` install it), driven by Playwright's Python package
with `executable_path`: Playwright's own browser download is never used. Without Chromium the test skips
and says why, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.messages.home import HOME_EDIT_TOPICS
from bot.messages.routing import ACTION_TAKE_QUESTION
from tests.test_playground import QUESTION, running_playground

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "playground"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (`make test` installs it)"
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (`make test` installs it with apt-get when it can)"
    return None


@pytest.fixture
def browser_page(no_slack_env: None) -> Iterator[Any]:
    if reason := _missing():
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser test (.ci/run installs chromium)")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture
def shots() -> Iterator[Any]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    taken = iter(range(1, 100))

    def shoot(page: Any, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{next(taken):02d}-{name}.png"))

    yield shoot


def act_as(page: Any, user: str) -> None:
    page.click(f'#people [data-user="{user}"]')
    page.wait_for_selector(f'#people [data-user="{user}"].active')


def test_ask_get_routed_answer_accept_and_post_the_digest_in_the_browser(browser_page, shots):
    from playwright.sync_api import expect

    page = browser_page
    with running_playground() as (playground, url):
        page.goto(url)
        expect(page.locator("#banner")).to_contain_text("a local simulation")
        expect(page.locator("#title")).to_have_text("# general")
        expect(page.locator('#people [data-user="U_ASKER"]')).to_have_class("person active")
        shots(page, "start")

        # Ana asks in #general.
        page.fill("#text", f"/ask {QUESTION}")
        page.press("#text", "Enter")
        question = page.locator("#messages .msg.bot", has_text="How do I vacuum a big table without locking it?")
        expect(question).to_have_count(1)
        expect(question).to_contain_text("Ana Asker")  # the <@U_ASKER> mention, rendered with the name
        expect(page.locator("#text")).to_have_value("")
        shots(page, "asked")

        # The bot routes it by DM to the two #postgres experts, both within their working hours now.
        act_as(page, "U_BERLIN")
        expect(page.locator('#people [data-user="U_NEWYORK"] .badge')).to_have_text("DM")
        page.click("#go-dm")
        routed = page.locator("#messages .msg.bot", has_text="How do I vacuum a big table without locking it?")
        expect(routed).to_have_count(1)
        expect(routed.locator(f'[data-action-id="{ACTION_TAKE_QUESTION}"]')).to_be_visible()
        shots(page, "routed-by-dm")

        # Bruno follows the DM's link to the question, which opens its thread, and answers there.
        routed.locator("a[data-ts]").first.click()
        expect(page.locator("#title")).to_have_text("# general")
        expect(page.locator("#thread")).to_be_visible()
        page.fill("#thread-text", "Run VACUUM (VERBOSE) in a quiet hour; pg_repack rebuilds it without a long lock.")
        page.press("#thread-text", "Enter")
        answer = page.locator("#thread-messages .msg", has_text="pg_repack rebuilds it")
        expect(answer).to_have_count(1)
        expect(question).to_contain_text("1 reply")
        shots(page, "answered-in-thread")

        # Ana accepts it with ✅: the bot redraws the question as resolved.
        act_as(page, "U_ASKER")
        question.locator("button.replies").click()
        answer.hover()
        answer.locator('.msg-actions button[data-reaction="white_check_mark"]').click()
        expect(answer.locator('.pill[data-reaction="white_check_mark"]')).to_contain_text("1")
        expect(question).to_contain_text("Resolved")
        expect(question).to_contain_text("Bruno Berg")
        shots(page, "accepted")

        # The App Home: its buttons work (block_actions; this one opens a modal).
        page.click("#go-home")
        expect(page.locator("#home .blocks")).to_be_visible()
        shots(page, "app-home")
        page.click(f'#home [data-action-id="{HOME_EDIT_TOPICS}"]')
        expect(page.locator("#modal .modal")).to_be_visible()
        shots(page, "app-home-button-opened-a-modal")
        page.locator("#modal .modal-foot button", has_text="Cancel").click()
        expect(page.locator("#modal")).to_be_hidden()

        # The digest, posted now.
        page.click('#channels [data-place="C_GENERAL"]')
        page.click("#digest")
        digest = page.locator("#messages .msg.bot", has=page.locator(".bk-header"))
        expect(digest).to_have_count(1)
        expect(digest).to_contain_text("How do I vacuum a big table")
        expect(page.locator(".toast.info")).to_contain_text("digest was posted")
        digest.scroll_into_view_if_needed()
        shots(page, "digest")

        assert playground.fake.violations == []


def test_a_modal_opens_and_submits_and_ephemerals_show_for_their_user_only(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    shots = ARTIFACTS / "modal"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    with running_playground() as (playground, url):
        page.goto(url)
        act_as(page, "U_NEWCOMER")
        page.fill("#text", "/ask help")
        page.press("#text", "Enter")
        help_message = page.locator("#messages .msg.ephemeral")
        expect(help_message).to_contain_text("Only visible to you")
        expect(help_message).to_contain_text("/ask")
        page.screenshot(path=str(shots / "01-ephemeral-help.png"))
        act_as(page, "U_ASKER")
        expect(page.locator("#messages")).to_contain_text("Nothing here yet")  # Nico's help is not Ana's

        page.fill("#text", "/ask")
        page.press("#text", "Enter")
        modal = page.locator("#modal .modal")
        expect(modal).to_be_visible()
        expect(modal.locator('select[name="channel"]')).to_have_value("C_GENERAL")  # the current channel
        modal.locator('button[type="submit"]').click()  # nothing typed: Slack says so under the field
        expect(modal.locator('.bk-error[data-error-for="question"]')).to_have_text(
            "Please complete this required field."
        )
        modal.locator('[name="tags"]').fill("#ops ???")
        modal.locator('[name="question"]').fill("Where do the runbooks live?")
        modal.locator('button[type="submit"]').click()  # the bot's own answer, under the tags field
        expect(modal.locator('.bk-error[data-error-for="tags"]')).to_contain_text("Not a tag: ???")
        expect(modal.locator('.bk-error[data-error-for="question"]')).to_be_empty()
        expect(page.locator(".toast")).to_have_count(0)
        page.screenshot(path=str(shots / "02-errors-under-the-fields.png"))
        modal.locator('[name="tags"]').fill("#ops")
        page.screenshot(path=str(shots / "03-ask-modal.png"))
        modal.locator('button[type="submit"]').click()
        expect(page.locator("#modal")).to_be_hidden()
        expect(page.locator("#messages .msg.bot", has_text="Where do the runbooks live?")).to_have_count(1)
        page.screenshot(path=str(shots / "04-asked-from-modal.png"))
        assert playground.fake.violations == []


def test_emoji_shortcodes_show_as_the_emoji_slack_shows(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    with running_playground() as (_playground, url):
        page.goto(url)
        page.fill("#text", f"/ask {QUESTION}")
        page.press("#text", "Enter")
        question = page.locator("#messages .msg.bot", has_text="How do I vacuum a big table without locking it?")
        expect(question).to_contain_text("🙋")  # :raising_hand:
        expect(question).to_contain_text("🧵")  # :thread:
        expect(question).not_to_contain_text(":raising_hand:")
        rendered = page.evaluate(
            "names => names.map((name) => mrkdwn(`:${name}:`))",
            ["hourglass_flowing_sand", "hourglass", "seedling", "+1", "wave::skin-tone-3"],
        )
        assert rendered == ["⏳", "⌛", "🌱", "👍", "👋🏼"]
        assert page.evaluate("mrkdwn('at 10:00:00, :not_an_emoji: stays')") == "at 10:00:00, :not_an_emoji: stays"
