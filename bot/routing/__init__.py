"""Routing questions to experts: who to DM and when, the DMs themselves, escalation, the buttons, suggestions.

ranker and planner are pure (no database, no Slack); evidence loads what they need; escalation takes a
question from posted to bumped; delivery sends the DMs and keeps them in line with their questions; buttons
store a click before the ack and tell Slack after; suggestions show similar answered questions first.
"""
