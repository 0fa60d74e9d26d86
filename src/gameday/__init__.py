"""gameday-runner: chaos-engineering and disaster-recovery game days, one cell at a time."""

from gameday.errors import GamedayError, InputError, SandboxError

__version__ = "0.1.0"
__all__ = ["GamedayError", "InputError", "SandboxError", "__version__"]
