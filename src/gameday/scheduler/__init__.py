"""The scheduler: weekly chaos windows, one cell at a time."""
