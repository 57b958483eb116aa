"""Every word a person reads and every Block Kit payload PeerLearn sends, by surface: pure builders (no Slack,
no database), with the action, block and view ids as named constants."""
