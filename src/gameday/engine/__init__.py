"""The experiment engine: validate, preflight, run in a worker process, sample, measure, persist."""
