"""The README's set-up path, followed as a newcomer does: `cp .env.example .env`, fill in what the mode
needs, start PeerLearn, and a slash command works.

Each test starts from a folder holding only `.env` (the example copied, then edited) and an environment
with none of the variables PeerLearn, Bolt or slack_sdk read, so a developer's own settings never leak in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import Clock
from bot.config import SETUP_HELP, is_read, load_environment
from bot.messages.help import ASK_USAGE
from bot.playground.emulator.fake_api import BOT_TOKEN, FakeSlackAPI
from bot.playground.emulator.workspace import SlackError
from bot.playground.emulator.world import SlackWorld
from bot.playground.server import PlaygroundSlack
from bot.runtime.cli import build_parser
from tests.production_harness import GENERAL, populate

ROOT = Path(__file__).resolve().parent.parent
APP_TOKEN = "xapp-1-A0001-test"
SIGNING_SECRET = "newcomer-signing-secret"
HELP_HEADLINE = ASK_USAGE.split("*")[1]  # "Ask your colleagues with": what `/ask help` answers first
GONE = "no longer available"  # Bolt's answer when it looks for an installation that is not there
START_TIMEOUT = 60.0


def example_env(folder: Path, **filled: str) -> Path:
    """`cp .env.example .env`, then fill in `filled` as a person edits the file (NAME= becomes NAME=value)."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name, value in filled.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, f".env.example has no {name}= line to fill in"
    env_file = folder / ".env"
    env_file.write_text(text, encoding="utf-8")
    return env_file


def newcomer_environ() -> dict[str, str]:
    """This environment without anything PeerLearn, Bolt or slack_sdk would read."""
    return {name: value for name, value in os.environ.items() if not is_read(name)}


def eventually(check: Callable[[], Any], what: str, timeout: float = START_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.1)
    return result


class AppProcess:
    """`.venv/bin/python app.py VERB…` started in `folder`; its output collected line by line."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *args],
            cwd=folder,
            env=newcomer_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its worker processes are stopped with it
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"app.py ended (exit {self.process.returncode}):\n{self.output}")
            return next((m for line in list(self.lines) if (m := re.search(pattern, line))), None)

        return eventually(found, f"printed /{pattern}/:\n{self.output}", timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # a worker left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(5)


@contextlib.contextmanager
def app_process(folder: Path, *args: str) -> Iterator[AppProcess]:
    started = AppProcess(folder, *args)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


# --- item 1: an empty variable is not set ---------------------------------------------------------------


def test_load_environment_fills_in_from_env_file_and_drops_empty_variables(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_CLIENT_ID=\nSLACK_BOT_TOKEN=xoxb-from-file\nPORT=4000\nLOG_LEVEL=\nOTHER=\n")
    environ = {"SLACK_CLIENT_SECRET": " ", "PORT": "5000", "DATABASE_URL": "", "HOME": "/home/x", "EMPTY": ""}
    load_environment(env_file, environ)
    assert environ == {"SLACK_BOT_TOKEN": "xoxb-from-file", "PORT": "5000", "HOME": "/home/x", "EMPTY": "", "OTHER": ""}


def test_an_empty_variable_in_the_environment_is_filled_in_from_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_BOT_TOKEN=xoxb-from-file\n")
    environ = {"SLACK_BOT_TOKEN": ""}
    load_environment(env_file, environ)
    assert environ == {"SLACK_BOT_TOKEN": "xoxb-from-file"}


def test_the_playground_answers_commands_with_the_example_env_copied(tmp_path):
    example_env(tmp_path)  # nothing filled in: no Slack tokens, so `app.py` starts the playground
    with app_process(tmp_path) as playground:
        url = playground.wait_for_line(r"PeerLearn playground: (http://\S+)").group(1)
        assert post_json(url + "/api/send", {"user": "U_ASKER", "channel": "C_GENERAL", "text": "/ask help"})["ok"]

        def answered() -> list[str]:
            state = get_json(f"{url}/api/state?user=U_ASKER&channel=C_GENERAL")
            return [note["text"] for note in state["view"]["ephemerals"]]

        [answer] = eventually(answered, "answered /ask help", timeout=20)
        assert HELP_HEADLINE in answer and GONE not in answer


@pytest.fixture
def workspace(fake_slack: FakeSlackAPI) -> SlackWorld:
    """#general in the emulator; requests are sent to the PeerLearn a test starts (`world.sender.url`)."""
    world = SlackWorld(fake_slack, "http://127.0.0.1:9", SIGNING_SECRET, Clock())
    populate(world)
    return world


def test_serve_answers_commands_with_the_example_env_filled_in(tmp_path, workspace, database_url, unused_port):
    fake = workspace.fake
    example_env(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake.base_url,
        DATABASE_URL=database_url,
        PORT=str(unused_port),
    )
    with app_process(tmp_path, "serve", "--host", "127.0.0.1") as serve:
        url = f"http://127.0.0.1:{unused_port}"
        eventually(lambda: status_of(url + "/healthz") == 200, f"healthy:\n{serve.output}")
        workspace.sender.url = url + "/slack/events"

        helped = workspace.command("U_ASKER", "/ask", "help", GENERAL)
        assert helped.status == 200
        assert HELP_HEADLINE in helped.body, f"answered {helped.body!r}, told {workspace.ephemerals('U_ASKER')}"

        posted = workspace.ask("U_ASKER", "How do I rotate the TLS certificate? #ops", GENERAL, timeout=20)
        assert "How do I rotate the TLS certificate?" in posted.plain
        assert not [note for note in workspace.ephemerals("U_ASKER") if GONE in note["text"]]


def slash_command(text: str, fake: FakeSlackAPI) -> dict[str, str]:
    """/ask `text` from Ana in #general, as Slack sends it (over HTTP, or as a Socket Mode envelope's payload)."""
    return fake.command_fields("U_ASKER", text, GENERAL, channel_name="general")


def test_make_run_connects_in_socket_mode_and_answers_commands_with_the_example_env_filled_in(
    tmp_path, workspace, database_url
):
    fake = workspace.fake
    slack = fake.enable_socket_mode(APP_TOKEN)
    example_env(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=fake.base_url,
        DATABASE_URL=database_url,
    )
    with app_process(tmp_path) as run:  # what `make run` runs; with both tokens in .env: Socket Mode
        slack.wait_connected(START_TIMEOUT)
        helped = slack.deliver("slash_commands", slash_command("help", fake))
        assert HELP_HEADLINE in str(helped.get("payload")), f"acknowledged with {helped}:\n{run.output}"

        since = fake.mark()
        slack.deliver("slash_commands", slash_command("How do I rotate the TLS certificate? #ops", fake))
        posted = workspace.wait_post(GENERAL, since=since, timeout=20)
        assert "How do I rotate the TLS certificate?" in posted.plain
    assert "Traceback" not in run.output and "level=WARNING" not in run.output, run.output


# --- item 4: `make run` says what started and where to open it --------------------------------------------

FIRST_SECONDS = 3.0  # what a newcomer reads first; the scheduler's first jobs run 1 s after the start


def test_make_run_without_slack_says_what_started_and_where_to_open_it(tmp_path):
    example_env(tmp_path)
    started = time.monotonic()
    with app_process(tmp_path) as playground:  # what `make run` runs, with the example .env copied
        url = playground.wait_for_line(r"PeerLearn playground: (http://\S+)").group(1)
        eventually(lambda: time.monotonic() - started > FIRST_SECONDS, "past the first seconds")
        first = list(playground.lines)
    assert first[:2] == [
        f"No Slack tokens configured: starting the local playground. To use Slack, see {SETUP_HELP}",
        f"PeerLearn playground: {url}",
    ]
    assert len(first) == 3 and first[2].startswith("A local simulation"), "\n".join(first)


def test_the_playground_checks_required_arguments_without_a_word_to_a_newcomer(caplog):
    with caplog.at_level(logging.INFO):
        emulator = PlaygroundSlack(now=time.time)  # Slack's method reference ships with it: nothing to warn about
    assert not caplog.records
    with pytest.raises(SlackError, match="invalid_arguments"):
        emulator.check("chat.postEphemeral", {"channel": GENERAL, "text": "only for you"})
    assert [v.reason for v in emulator.take_violations()] == ["invalid_arguments: missing required argument 'user'"]


# --- item 2: every command the README shows works as written on a fresh machine ----------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")
APP = ".venv/bin/python app.py"


def shown_commands() -> list[str]:
    """What the README shows to type: code spans and the lines of ```sh blocks (comments left out)."""
    spans = re.findall(r"`([^`\n]+)`", README)
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    return [line.split("  #", 1)[0].strip() for line in spans + [ln for b in blocks for ln in b.splitlines()]]


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_the_set_up_documents_run_python_from_the_virtualenv_everywhere(document):
    """`python app.py` outside the virtualenv fails with ModuleNotFoundError on a fresh machine."""
    text = (ROOT / document).read_text(encoding="utf-8")
    bare = [match.group(0) for match in re.finditer(r"(?<![/\w#])python3? \S+", text)]
    assert bare == []


def test_every_app_py_command_in_the_readme_is_one_the_cli_takes():
    parser = build_parser()
    [verbs] = [action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    commands = [command for command in shown_commands() if command.startswith(APP)]
    assert len(commands) >= 12
    for command in commands:
        words = command.removeprefix(APP).split()
        verb = words[0] if words and not words[0].startswith("-") else None
        assert verb is None or verb in verbs, command
        options = {word.strip("[]") for word in words if word.strip("[]").startswith("--")}
        assert options <= options_of(verbs[verb] if verb else parser), command


def test_every_make_target_and_benchmark_in_the_readme_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE))
    shown = {command.split()[1] for command in shown_commands() if re.match(r"make [a-z-]+$", command)}
    assert {"run", "playground", "serve", "migrate", "stats", "test"} <= shown
    assert shown <= targets
    for command in shown_commands():
        if command.startswith(".venv/bin/python bench/"):
            assert (ROOT / command.split()[1]).is_file(), command
