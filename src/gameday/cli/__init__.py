"""The ``gameday`` command line: parses, calls the core, maps errors to exit codes."""
