#!/usr/bin/env python3
"""Reference values for Sluice's rollout statistics, computed independently with numpy and scipy.

The Rust implementation (crates/core/src/rollout/stats.rs) uses closed forms.
This script reaches the same quantities by other routes where it can:

- confidence-sequence half-widths from Howard et al. (2021) eq. (14) in its original
  (S_t, V_t) parameterisation, rather than GrowthBook's per-observation rewrite, and a check
  that this closed form is never tighter than the exact one-sided normal-mixture boundary,
  found by root-finding on the mixture martingale;
- always-valid p-values by root-finding on the half-width over alpha, rather than the
  closed-form inversion;
- SRM p-values from scipy.stats.chisquare;
- normal quantiles from scipy.stats.norm.ppf;
- fixed-horizon sample sizes by root-finding on the power function, rather than the
  closed-form inversion.

Run it from the repository root and commit the output:

    pip install numpy scipy
    python3 scripts/stats_reference.py > crates/core/tests/data/stats_reference.json
"""

import json
import math
import sys

import numpy as np
import scipy
from scipy import optimize, stats


def rho(alpha, tuning):
    """Waudby-Smith et al. (2023) eq. 161 at 2*alpha, GrowthBook's one-sided choice."""
    a = 2 * alpha
    return math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / tuning)


def howard_bound(v, rho_h, alpha):
    """Howard et al. (2021) eq. (14): one-sided normal-mixture boundary on S_t at intrinsic time V."""
    return math.sqrt(2 * (v + rho_h) * math.log(math.sqrt((v + rho_h) / rho_h) / (2 * alpha) + 1))


def exact_mixture_bound(v, rho_h, alpha):
    """The s where the one-sided (half-normal) mixture martingale reaches 1/alpha."""

    def log_martingale(s):
        total = v + rho_h
        return (
            math.log(2)
            + 0.5 * math.log(rho_h / total)
            + s * s / (2 * total)
            + stats.norm.logcdf(s / math.sqrt(total))
        )

    target = math.log(1 / alpha)
    hi = 1.0
    while log_martingale(hi) < target:
        hi *= 2
    return optimize.brentq(lambda s: log_martingale(s) - target, 0.0, hi, xtol=1e-14, rtol=1e-15)


def halfwidth(s2, n, alpha, r):
    """Half-width on the mean: the bound on S_t at V = n * s2, with rho_H = s2 / rho^2, over n."""
    rho_h = s2 / (r * r)
    return howard_bound(n * s2, rho_h, alpha) / n


def p_value(distance, s2, n, r):
    """The smallest alpha whose half-width (with rho fixed) excludes `distance`, by root-finding."""
    if distance <= 0:
        return 1.0
    f = lambda alpha: halfwidth(s2, n, alpha, r) - distance
    lo, hi = 1e-300, 1.0
    if f(hi) > 0:
        return 1.0
    if f(lo) < 0:
        return 0.0
    # Work in log(alpha): the half-width is smooth and monotone in it.
    g = lambda log_alpha: f(math.exp(log_alpha))
    return math.exp(optimize.brentq(g, math.log(lo), math.log(hi), xtol=1e-13, rtol=1e-15))


def proportions(nc, kc, nt, kt):
    """Raw difference with the Agresti-Caffo adjusted standard error."""
    pc, pt = kc / nc, kt / nt
    ac, at = (kc + 1) / (nc + 2), (kt + 1) / (nt + 2)
    se = math.sqrt(ac * (1 - ac) / nc + at * (1 - at) / nt)
    return pt - pc, se


def sequence_case(nc, kc, nt, kt, alpha, tuning, threshold):
    estimate, se = proportions(nc, kc, nt, kt)
    n = nc + nt
    s2 = se * se * n
    r = rho(alpha, tuning)
    h = halfwidth(s2, n, alpha, r)
    exact = exact_mixture_bound(n * s2, s2 / (r * r), alpha) / n
    assert h >= exact * (1 - 1e-12), (h, exact)
    return {
        "control": {"n": nc, "k": kc},
        "treatment": {"n": nt, "k": kt},
        "alpha": alpha,
        "tuning": tuning,
        "rho": r,
        "estimate": estimate,
        "std_error": se,
        "halfwidth": h,
        "exact_mixture_halfwidth": exact,
        "lo": estimate - h,
        "hi": estimate + h,
        "threshold": threshold,
        "p_value": p_value(abs(estimate - threshold), s2, n, r),
    }


def mean_case(control, treatment, alpha, tuning):
    def arm(values):
        values = np.asarray(values, dtype=float)
        return len(values), float(values.sum()), float((values**2).sum()), float(values.mean()), float(values.var(ddof=1))

    nc, sc, qc, mc, vc = arm(control)
    nt, st, qt, mt, vt = arm(treatment)
    se = math.sqrt(vc / nc + vt / nt)
    n = nc + nt
    r = rho(alpha, tuning)
    h = halfwidth(se * se * n, n, alpha, r)
    return {
        "control": {"n": nc, "sum": sc, "sum_sq": qc},
        "treatment": {"n": nt, "sum": st, "sum_sq": qt},
        "alpha": alpha,
        "tuning": tuning,
        "estimate": mt - mc,
        "std_error": se,
        "halfwidth": h,
    }


def srm_case(control, treatment, share):
    total = control + treatment
    expected = [total * (1 - share), total * share]
    result = stats.chisquare([control, treatment], expected)
    return {
        "observed": [control, treatment],
        "expected_treatment_share": share,
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
    }


def sample_size_case(pc, pt, alpha, power, sides, ratio):
    z_alpha = stats.norm.isf(alpha if sides == "one" else alpha / 2)

    def achieved(nt):
        se = math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / (ratio * nt))
        return stats.norm.cdf(abs(pt - pc) / se - z_alpha)

    nt = optimize.brentq(lambda n: achieved(n) - power, 1e-6, 1e12, xtol=1e-9, rtol=1e-14)
    treatment = math.ceil(nt - 1e-7)
    return {
        "p_control": pc,
        "p_treatment": pt,
        "alpha": alpha,
        "power": power,
        "sides": sides,
        "ratio": ratio,
        "continuous_treatment": nt,
        "treatment": treatment,
        "control": math.ceil(treatment * ratio - 1e-7),
    }


def main():
    sequences = []
    for nc, kc, nt, kt, alpha, tuning, threshold in [
        (1000, 10, 1000, 10, 0.05, 5000, 0.0),
        (1000, 10, 1000, 25, 0.05, 5000, 0.0),
        (200, 0, 200, 0, 0.05, 5000, 0.0),
        (200, 0, 200, 3, 0.05, 5000, 0.0),
        (45000, 450, 5000, 100, 0.05, 5000, 0.002),
        (90000, 900, 10000, 95, 0.05, 5000, 0.002),
        (9000, 90, 1000, 0, 0.05, 5000, 0.0),
        (50000, 500, 50000, 600, 0.05, 5000, 0.0),
        (100000, 1000, 100000, 1000, 0.05, 5000, 0.002),
        (5000, 250, 5000, 300, 0.01, 20000, 0.0),
        (5000, 250, 5000, 300, 0.10, 1000, 0.01),
        (2000000, 20000, 200000, 2100, 0.05, 5000, 0.0),
        (300, 150, 300, 120, 0.05, 5000, -0.05),
    ]:
        sequences.append(sequence_case(nc, kc, nt, kt, alpha, tuning, threshold))

    rng = np.random.default_rng(20240605)
    means = [
        mean_case(rng.normal(10.0, 2.0, 500), rng.normal(10.5, 2.5, 400), 0.05, 5000),
        mean_case(rng.exponential(30.0, 2000), rng.exponential(33.0, 200), 0.05, 5000),
        mean_case(rng.lognormal(3.0, 1.0, 10000), rng.lognormal(3.0, 1.0, 10000), 0.01, 20000),
    ]

    rhos = [
        {"alpha": alpha, "tuning": tuning, "rho": rho(alpha, tuning)}
        for alpha in (0.01, 0.05, 0.10)
        for tuning in (1000, 5000, 20000)
    ]

    quantiles = [
        {"p": p, "z": float(stats.norm.ppf(p))}
        for p in (1e-9, 1e-6, 0.001, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-6)
    ]

    srm = [
        srm_case(5000, 5000, 0.5),
        srm_case(5100, 4900, 0.5),
        srm_case(50500, 49500, 0.5),
        srm_case(90000, 10000, 0.1),
        srm_case(89500, 10500, 0.1),
        srm_case(89000, 11000, 0.1),
        srm_case(9900, 100, 0.01),
        srm_case(1000, 1500, 0.5),
        srm_case(8, 8, 0.25),
    ]

    sample_sizes = [
        sample_size_case(0.01, 0.02, 0.05, 0.8, "one", 9.0),
        sample_size_case(0.01, 0.02, 0.05, 0.8, "two", 1.0),
        sample_size_case(0.01, 0.02, 0.05, 0.8, "one", 1.0),
        sample_size_case(0.05, 0.06, 0.05, 0.8, "two", 1.0),
        sample_size_case(0.10, 0.08, 0.01, 0.9, "two", 3.0),
        sample_size_case(0.001, 0.002, 0.05, 0.8, "one", 99.0),
        sample_size_case(0.2, 0.25, 0.05, 0.95, "one", 1.0),
    ]

    out = {
        "meta": {
            "generator": "scripts/stats_reference.py",
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "normal_quantiles": quantiles,
        "rho": rhos,
        "proportion_sequences": sequences,
        "mean_sequences": means,
        "srm": srm,
        "sample_sizes": sample_sizes,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
