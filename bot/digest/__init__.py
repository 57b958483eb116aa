"""Weekly channel digests: schedule (when one is due, `/ask digest` settings), content (what it says, pure)
and posting (exactly once per channel and week, however many replicas tick)."""
