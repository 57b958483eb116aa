"""Tests of the Slack emulator (bot/playground/emulator) and its pytest fixtures."""
