"""Figures as pure functions over plain data: no clock, no database, no logging inside."""
