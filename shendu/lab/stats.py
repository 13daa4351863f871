"""Statistics for the claims lab, in plain Python (a handful of scalars per claim, one per
seed: no array library is needed, and none is imported).

Welch's t-test compares two groups of per-seed measurements without assuming equal spread:
    t = (mean_a - mean_b) / sqrt(var_a / n_a + var_b / n_b)
    df = (var_a/n_a + var_b/n_b)^2 / ((var_a/n_a)^2/(n_a-1) + (var_b/n_b)^2/(n_b-1))
The one-sided p-value is P(T_df >= t), from the regularized incomplete beta function
(Numerical Recipes' continued fraction): P(T_df >= t) = I_{df/(df+t^2)}(df/2, 1/2) / 2 for t > 0.
"""
from __future__ import annotations

import math


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def std(values) -> float:
    """Sample standard deviation (n - 1); 0.0 for a single value."""
    values = list(values)
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _beta_continued_fraction(a, b, x, iterations=300, eps=1e-15):
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def regularized_beta(a, b, x) -> float:
    """I_x(a, b) for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf(t, df) -> float:
    """P(T >= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def welch_t_test(a, b) -> dict:
    """One-sided Welch test of mean(a) > mean(b). Needs at least 2 values per group.

    Returns {'t', 'df', 'p_greater'}; with zero spread in both groups the test is decided by
    the sign of the difference alone (p 0 or 1; 0.5 when the means are equal).
    """
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_t_test: needs at least 2 values per group, got {len(a)} "
                         f"and {len(b)}")
    va, vb = std(a) ** 2 / len(a), std(b) ** 2 / len(b)
    diff = mean(a) - mean(b)
    if va + vb == 0.0:
        p = 0.0 if diff > 0 else 1.0 if diff < 0 else 0.5
        return {"t": math.copysign(math.inf, diff) if diff else 0.0, "df": math.inf,
                "p_greater": p}
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0.0)
                           + (vb ** 2 / (len(b) - 1) if vb else 0.0))
    return {"t": t, "df": df, "p_greater": t_sf(t, df)}
