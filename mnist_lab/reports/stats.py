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
    judged = ("larger than twice its standard error: a real difference" if real(a, b)
              else "within twice its standard error: not distinguishable from seed noise")
    return f"{d:+.{digits}f} {unit} (standard error {se:.{digits}f}), {judged}"


def real(a, b) -> bool | None:
    """Whether the means of `a` and `b` ((mean, std, n) each) differ by more than twice the standard error of
    their difference; None where there is no spread to judge by (one run, or no spread over seeds at all)."""
    if a[2] < 2 or b[2] < 2:
        return None
    se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2])
    return None if se == 0 else abs(a[0] - b[0]) > 2 * se


def noise_verdict(here, committed, unit: str = "points", digits: int = 2) -> str:
    """Whether a remade mean `here` lies within seed noise of the `committed` one, both (mean, std, n). With
    one run here its spread is taken to be the committed runs' (the same method, so the same seed spread)."""
    m, s, n = here
    cm, cs, cn = committed
    if cn < 2:
        return f"{m:.{digits}f} here, {cm:.{digits}f} committed (one committed run: no spread to judge by)"
    spread = cs if n < 2 else s
    se = math.sqrt(spread ** 2 / n + cs ** 2 / cn)
    d = m - cm
    judged = "within seed noise" if abs(d) <= 2 * se else "outside seed noise: not reproduced"
    return (f"{pm(m, s, n, digits)} here, {pm(cm, cs, cn, digits)} committed: {d:+.{digits}f} {unit} "
            f"(standard error {se:.{digits}f}), {judged}")
