"""Reports: pure context builders, templates, renderers."""
