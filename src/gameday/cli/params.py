"""Click parameter types shared by every command: one numeric rule for every flag.

Every number a flag takes is finite and inside its documented range; NaN and infinity, which
``float()`` accepts, are refused with exit 2 like any other bad value.
"""

from __future__ import annotations

import math
from typing import NoReturn

import click


class FiniteFloat(click.ParamType[float]):
    """A finite float in ``[low, high]`` (``low`` excluded when ``low_open``)."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
        self.low = low
        self.high = high
        self.low_open = low_open

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"at most {self.high:g}")
        return "a finite number" + (" " + " and ".join(parts) if parts else "")

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(str(value))
            except ValueError:
                self._refuse(value, param, ctx)
        if not math.isfinite(number):
            self._refuse(value, param, ctx, " (NaN and infinity are not numbers gameday uses)")
        too_low = self.low is not None and (number <= self.low if self.low_open
                                            else number < self.low)
        too_high = self.high is not None and number > self.high
        if too_low or too_high:
            self._refuse(value, param, ctx)
        return number

    def _refuse(self, value: object, param: click.Parameter | None, ctx: click.Context | None,
                why: str = "") -> NoReturn:
        self.fail(f"expected {self.describe()}, found {value!r}{why}.\n  fix: pass "
                  f"{self.describe()}", param, ctx)


class WholeNumber(click.ParamType[int]):
    """A whole number in ``[low, high]``."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                number = self.low - 1
        if not self.low <= number <= self.high:
            self.fail(f"expected a whole number from {self.low} to {self.high}, found "
                      f"{value!r}.\n  fix: pass a whole number in that range", param, ctx)
        return number


def whole(low: int, high: int) -> WholeNumber:
    return WholeNumber(low, high)


def finite(low: float | None = None, high: float | None = None, *,
           low_open: bool = False) -> FiniteFloat:
    return FiniteFloat(low, high, low_open)


__all__ = ["FiniteFloat", "WholeNumber", "finite", "whole"]
