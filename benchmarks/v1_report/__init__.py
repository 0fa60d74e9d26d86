"""A frozen copy of the resilience report's aggregation before issue 10 (analytics/fleet.py and
reporting/resilience_context.py at commit 487eb5c): the benchmark's peer, run on the same data."""
