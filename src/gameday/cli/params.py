"""Click parameter types shared by every command: one numeric rule for every flag.

Every number a flag takes is finite and inside its documented range; NaN and infinity, which
``float()`` accepts, are refused with exit 2 like any other bad value.
"""

from __future__ import annotations

import math

import click


class FiniteFloat(click.ParamType):
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
                self.fail(f"expected {self.describe()}, found {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected {self.describe()}, found {value!r} (NaN and infinity are "
                      "not numbers a run can use)", param, ctx)
        too_low = self.low is not None and (number <= self.low if self.low_open
                                            else number < self.low)
        too_high = self.high is not None and number > self.high
        if too_low or too_high:
            self.fail(f"expected {self.describe()}, found {value!r}", param, ctx)
        return number


def finite(low: float | None = None, high: float | None = None, *,
           low_open: bool = False) -> FiniteFloat:
    return FiniteFloat(low, high, low_open)


__all__ = ["FiniteFloat", "finite"]
