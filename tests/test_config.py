"""Settings come from the environment and fail fast with a message that says what to do."""

import pytest

from bot.config import DEFAULT_DATABASE_URL, ConfigError, Settings


def test_defaults_need_nothing():
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.accept_reaction == "white_check_mark"


def test_environment_overrides():
    settings = Settings.from_env(
        {
            "SLACK_API_URL": "http://127.0.0.1:9999/api",
            "PEERLEARN_ACCEPT_REACTION": ":heavy_check_mark:",
            "PEERLEARN_HELPFUL_REACTIONS": "tada, :fire:",
            "PEERLEARN_TAG_ALIASES": "k8s=kubernetes",
            "PORT": "8080",
        }
    )
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.accept_reaction == "heavy_check_mark"
    assert settings.helpful_reactions == ("tada", "fire")
    assert settings.tag_aliases == {"k8s": "kubernetes"}
    assert settings.port == 8080


def test_missing_tokens_are_named_with_the_fix():
    with pytest.raises(ConfigError) as problem:
        Settings.from_env({}).require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    message = str(problem.value)
    assert "SLACK_BOT_TOKEN" in message and "SLACK_APP_TOKEN" in message
    assert "README" in message and ".env" in message


@pytest.mark.parametrize(
    "env",
    [
        {"PORT": "abc"},
        {"PEERLEARN_DAILY_DM_CAP": "0"},
        {"PEERLEARN_TAG_ALIASES": "k8s"},
        {"PEERLEARN_WORK_DAYS": "mon-fry"},
        {"PEERLEARN_WORK_DAYS": ","},
        {"PEERLEARN_WORK_DAYS": "m"},
    ],
)
def test_malformed_values_are_refused(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("named", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Sun-Thu", {6, 0, 1, 2, 3}),
        ("monday, wednesday,FRIDAY", {0, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("sat", {5}),
        ("mon-sun", set(range(7))),
        ("tue-thu,sat", {1, 2, 3, 5}),
    ],
)
def test_default_working_days_are_named(named, days):
    assert Settings.from_env({"PEERLEARN_WORK_DAYS": named}).work_days == frozenset(days)
    assert Settings.from_env({}).work_days == frozenset({0, 1, 2, 3, 4})
