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


def standard_error(a, b) -> float:
    """The standard error of the difference of two means, (mean, std, n) each. A side of one run has no spread
    of its own: it is taken to vary as the other side's runs (the same method varies as much by seed)."""
    sa = a[1] if a[2] > 1 else b[1]
    sb = b[1] if b[2] > 1 else a[1]
    return math.sqrt(sa ** 2 / a[2] + sb ** 2 / b[2])


def verdict(a, b, unit: str, digits: int = 2, single_like_others: bool = False) -> str:
    """`a` and `b` are (mean, std, n): their difference, its standard error and what it means. A difference
    counts as real when it is larger than twice its standard error. `single_like_others`: one run against
    several is judged with the several runs' spread (standard_error) instead of not at all."""
    d = a[0] - b[0]
    single = (a[2] < 2) + (b[2] < 2)
    if single == 2 or (single and not single_like_others):
        return f"{d:+.{digits}f} {unit} (one run each: no spread to judge by)"
    se = standard_error(a, b)
    if se == 0:
        return f"{d:+.{digits}f} {unit} (no spread over seeds at all)"
    judged = ("larger than twice its standard error: a real difference" if abs(d) > 2 * se
              else "within twice its standard error: not distinguishable from seed noise")
    how = ", the single run taken to vary as the others" if single else ""
    return f"{d:+.{digits}f} {unit} (standard error {se:.{digits}f}{how}), {judged}"


def real(a, b) -> bool | None:
    """Whether the means of `a` and `b` ((mean, std, n) each) differ by more than twice the standard error of
    their difference; None where there is no spread to judge by (one run, or no spread over seeds at all)."""
    if a[2] < 2 or b[2] < 2:
        return None
    se = standard_error(a, b)
    return None if se == 0 else abs(a[0] - b[0]) > 2 * se


def noise_verdict(here, committed, unit: str = "points", digits: int = 2) -> str:
    """Whether a remade mean `here` lies within seed noise of the `committed` one, both (mean, std, n). With
    one run here its spread is taken to be the committed runs' (the same method, so the same seed spread)."""
    m, s, n = here
    cm, cs, cn = committed
    if cn < 2:
        return f"{m:.{digits}f} here, {cm:.{digits}f} committed (one committed run: no spread to judge by)"
    se = standard_error(here, committed)
    d = m - cm
    judged = "within seed noise" if abs(d) <= 2 * se else "outside seed noise: not reproduced"
    return (f"{pm(m, s, n, digits)} here, {pm(cm, cs, cn, digits)} committed: {d:+.{digits}f} {unit} "
            f"(standard error {se:.{digits}f}), {judged}")
