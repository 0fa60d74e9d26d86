"""Parsing of untrusted input (cells, experiments, schedules) into frozen domain records.

The default paths live here, cheap to import: the CLI needs them before (or without) parsing.
"""

from pathlib import Path

DEFAULT_CELLS_FILE = Path("schedules/cells.yaml")
DEFAULT_SCHEDULE_FILE = Path("schedules/weekly.yaml")
