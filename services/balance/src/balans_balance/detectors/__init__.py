"""Detectors: pure functions over hourly series that return findings (no I/O)."""
