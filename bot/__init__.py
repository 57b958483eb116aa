"""PeerLearn's domain: settings, decisions, copy and Block Kit. Imports no slack_bolt and no runtime: the
runtime (CLI, HTTP serving, inbox worker, scheduler) is bot/runtime/, the local playground bot/playground/."""
