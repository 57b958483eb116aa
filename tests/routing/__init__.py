"""Routing's tests: the pure ranker and planner, and scenarios read as Slack conversations."""
