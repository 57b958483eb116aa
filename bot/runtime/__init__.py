"""The runtime: CLI verbs, HTTP serving, the inbox worker, the scheduler, metrics and logging. It imports the
domain (bot/); the domain never imports it."""
