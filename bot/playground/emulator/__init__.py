"""The Slack emulator: a fake Slack Web API checked against Slack's contract, signed inbound requests, Socket
Mode, and a transcript-style world of people acting in Slack. The playground runs on it; so do the tests."""
