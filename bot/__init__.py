"""PeerLearn's domain: settings, decisions and Block Kit. Imports no slack_bolt (but app_factory)."""
