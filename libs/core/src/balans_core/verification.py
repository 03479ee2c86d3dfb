"""Meters' verification (calibration) intervals for code that has no settings object
(the world queries): the common settings' ``BALANS_VERIFICATION_INTERVAL_YEARS`` over the
defaults, read from the environment once per process."""

from __future__ import annotations

from functools import cache

from balans_core.settings import CommonSettings


@cache
def verification_intervals() -> dict[str, int]:
    """Years per utility of this process's environment."""
    return CommonSettings().verification_intervals()
