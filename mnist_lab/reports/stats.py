"""The statistics every page states, each defined once: mean, sample standard deviation and n over seeds,
their ± text, and the verdict on a difference of two means against its standard error."""
from __future__ import annotations

import math
import statistics


def stats(xs) -> tuple[float, float, int]:
    """(mean, sample standard deviation (nan for one value), n)."""
    m = statistics.fmean(xs)
    return m, (statistics.stdev(xs) if len(xs) > 1 else float("nan")), len(xs)


def pm(m, s, n, digits=2) -> str:
    return f"{m:.{digits}f} ± {s:.{digits}f} (n={n})" if n > 1 else f"{m:.{digits}f} (n=1)"


def verdict(a, b, unit: str, digits: int = 2) -> str:
    """`a` and `b` are (mean, std, n): their difference, its standard error and what it means. A difference
    counts as real when it is larger than twice its standard error."""
    d = a[0] - b[0]
    if a[2] < 2 or b[2] < 2:
        return f"{d:+.{digits}f} {unit} (one run each: no spread to judge by)"
    se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    if se == 0:
        return f"{d:+.{digits}f} {unit} (no spread over seeds at all)"
    judged = ("larger than twice its standard error: a real difference" if abs(d) > 2 * se
              else "within twice its standard error: not distinguishable from seed noise")
    return f"{d:+.{digits}f} {unit} (standard error {se:.{digits}f}), {judged}"
