"""The Slack emulator: a fake Slack Web API, signed inbound requests and a transcript-style world."""
