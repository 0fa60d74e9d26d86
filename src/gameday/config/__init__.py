"""Parsing of untrusted input (cells, experiments) into frozen domain records."""
