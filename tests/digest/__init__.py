"""The weekly digests' tests: pure rules, end-to-end scenarios, exactly once."""
