"""Property-based tests (hypothesis) of the validation of `Hyper`, `Data`, `State` and `simulate`'s options.

Random bad values must raise `ValueError` whose message names the parameter; random good values must
construct and, for `simulate`, run (n = 2, a few steps). Bad values are refused before anything is
compiled, so those examples cost microseconds; the good `simulate` runs share one compile per mode.
"""

import os

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import byoldyn as bd

_N = int(os.environ.get("BYOLDYN_HYPOTHESIS_EXAMPLES", "40"))  # more for a deeper local search
FAST = settings(max_examples=_N, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
RUNS = settings(max_examples=max(1, _N * 3 // 8), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1e3)
nonneg = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e2))
negative = st.floats(max_value=-1e-12, min_value=-1e12)
nonfinite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
# values of the wrong type: no number at all
not_numbers = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.just({"a": 1}), st.just([1.0, "x"]),
                        st.complex_numbers(min_magnitude=1e-3, max_magnitude=1e3, allow_nan=False,
                                           allow_infinity=False).filter(lambda z: z.imag != 0))


def _raises_naming(name: str, f, *args, **kwargs) -> str:
    """Call `f`; it must raise `ValueError` whose message starts with `name` (as errors.as_flags expects)."""
    with pytest.raises(ValueError) as e:
        f(*args, **kwargs)
    msg = str(e.value)
    assert msg.startswith(name + " "), (name, msg)
    return msg


def _psd(rng, n, floor=0.1):
    A = rng.standard_normal((n, n))
    return A @ A.T / n + floor * np.eye(n)


# ---------------------------------------------------------------------------------------------- Hyper

RATES = ("alpha_p", "eta", "beta", "eta_p")


@st.composite
def bad_hyper(draw):
    name = draw(st.sampled_from(RATES))
    bad = draw(st.one_of(negative, nonfinite, not_numbers, *([st.just(0.0)] if name == "alpha_p" else [])))
    if bad is None and name == "eta_p":  # eta_p=None is the default (eta_p = eta)
        bad = "eta"
    if draw(st.booleans()) and isinstance(bad, float):  # one bad entry in a batch of otherwise good ones
        bad = np.array([1.0, bad, 0.5])
    return name, bad


@FAST
@given(bad_hyper())
def test_hyper_refuses_bad_values(case):
    name, bad = case
    _raises_naming(name, bd.Hyper, **{name: bad})


@FAST
@given(positive, nonneg, nonneg, st.one_of(st.none(), nonneg))
def test_hyper_accepts_good_values(alpha_p, eta, beta, eta_p):
    h = bd.Hyper(alpha_p=alpha_p, eta=eta, beta=beta, eta_p=eta_p)
    assert float(h.alpha_p) == alpha_p and float(h.beta) == beta
    assert float(h.eta_p) == (eta if eta_p is None else eta_p)


# ----------------------------------------------------------------------------------------------- Data

@st.composite
def bad_data(draw):
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    X, Xp = _psd(rng, n), _psd(rng, n)
    which = draw(st.sampled_from(["X", "Xp"]))
    kind = draw(st.sampled_from(["shape", "nonfinite", "type", "asym", "notpsd"] if n > 1 else
                                ["shape", "nonfinite", "type", "notpsd"]))
    M = X if which == "X" else Xp
    if kind == "shape":
        M = draw(st.sampled_from([np.ones(n), np.ones((n, n + 1)), np.ones((n + 1, n + 1)) if which == "Xp" else
                                  np.ones((n + 1, n))]))
    elif kind == "nonfinite":
        M = M.copy()
        M[draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))] = draw(nonfinite)
    elif kind == "type":
        M = draw(st.sampled_from(["identity", None, [[1.0, "a"]]]))
    elif kind == "asym":  # far beyond the rounding tolerance (1e-6 relative)
        M = M.copy()
        M[0, n - 1] += draw(st.floats(1e-3, 10.0)) * np.max(np.abs(M))
    else:  # smallest eigenvalue pushed below zero by well over the tolerance
        lmin = np.min(np.linalg.eigvalsh(M))
        M = M - (lmin + draw(st.floats(1e-3, 10.0)) * np.max(np.abs(M))) * np.eye(n)
    return which, (M, Xp) if which == "X" else (X, M)


@FAST
@given(bad_data())
def test_data_refuses_bad_matrices(case):
    which, (X, Xp) = case
    _raises_naming(which, bd.Data, X, Xp)


@st.composite
def bad_isotropic(draw):
    name = draw(st.sampled_from(["n1", "sigma2", "x"]))
    if name == "n1":
        bad = draw(st.one_of(st.integers(max_value=0), st.floats(0.5, 10.0), st.booleans(), st.text(max_size=3)))
    else:
        bad = draw(st.one_of(negative, nonfinite, not_numbers))
    args = {"n1": 3, "sigma2": 0.5, "x": 1.0, name: bad}
    return name, args


@FAST
@given(bad_isotropic())
def test_isotropic_data_refuses_bad_values(case):
    name, args = case
    _raises_naming(name, bd.Data.isotropic, **args)


@FAST
@given(st.integers(1, 4), st.integers(0, 2**31), nonneg)
def test_data_accepts_psd_matrices(n, seed, floor):
    rng = np.random.default_rng(seed)
    X, Xp = _psd(rng, n, floor), _psd(rng, n, floor)
    d = bd.Data(X, Xp)
    assert d.n1 == n and not d.is_isotropic
    np.testing.assert_array_equal(np.asarray(d.X), X)


# ---------------------------------------------------------------------------------------------- State

@st.composite
def bad_state(draw):
    n1, n2 = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    f = {"W": np.ones((n2, n1)), "Wp": np.eye(n2), "Wa": np.zeros((n2, n1))}
    name = draw(st.sampled_from(["W", "Wp", "Wa"]))
    kind = draw(st.sampled_from(["shape", "nonfinite", "type"]))
    if kind == "shape":
        f[name] = {"W": np.ones(n1), "Wp": np.eye(n2 + 1), "Wa": np.ones((n2 + 1, n1))}[name]
    elif kind == "nonfinite":
        f[name] = f[name].copy()
        f[name][..., 0, 0] = draw(nonfinite)
    else:
        f[name] = draw(st.sampled_from(["W", [[0.0, "a"]]] + ([None] if name != "Wa" else [])))  # Wa=None: 0
    return name, f


@FAST
@given(bad_state())
def test_state_refuses_bad_arrays(case):
    name, f = case
    _raises_naming(name, bd.State, f["W"], f["Wp"], f["Wa"])


@st.composite
def bad_random_state(draw):
    name = draw(st.sampled_from(["key", "n1", "n2", "scale", "wp_scale", "target", "dtype"]))
    kw = {"key": jax.random.PRNGKey(0), "n1": 3, "n2": 2}
    kw[name] = draw({
        "key": st.one_of(st.integers(), st.none(), st.text(max_size=3), st.just(np.zeros(2))),
        "n1": st.one_of(st.integers(max_value=0), st.floats(0.5, 5.0), st.booleans()),
        "n2": st.one_of(st.integers(max_value=0), st.just("2")),
        "scale": st.one_of(negative, not_numbers.filter(lambda v: v is not None)),
        "wp_scale": st.one_of(negative, st.text(max_size=3)),
        "target": st.text(max_size=5).filter(lambda s: s not in ("zero", "copy")),
        "dtype": st.sampled_from([jnp.int32, "big", bool]),
    }[name])
    return name, kw


@FAST
@given(bad_random_state())
def test_state_random_refuses_bad_arguments(case):
    name, kw = case
    _raises_naming(name, lambda key, n1, n2, **o: bd.State.random(key, n1, n2, **o), **kw)


@pytest.mark.slow
@RUNS
@given(st.integers(1, 3), st.integers(1, 3), st.floats(0.0, 3.0), st.sampled_from(["zero", "copy"]))
def test_state_random_accepts_good_arguments(n1, n2, scale, target):
    s = bd.State.random(jax.random.PRNGKey(n1), n1, n2, scale=scale, target=target)
    assert s.W.shape == (n2, n1) and s.Wp.shape == (n2, n2) and np.all(np.isfinite(np.asarray(s.W)))
    np.testing.assert_array_equal(np.asarray(s.Wa), np.asarray(s.W) if target == "copy" else 0.0)


# ------------------------------------------------------------------------------------- simulate options

S0 = bd.State.random(jax.random.PRNGKey(0), 2, 2, scale=0.5)
HP, DATA = bd.Hyper(eta=0.01), bd.Data.isotropic(2, 0.5)
T1 = 1.0


@st.composite
def bad_options(draw):
    """(the parameter a message must name, keyword arguments with one bad value)."""
    name = draw(st.sampled_from(["t1", "t0", "ts", "dt", "rtol", "atol", "max_steps", "max_norm", "solver",
                                 "ema", "stop_grad", "predictor", "observe", "progress"]))
    kw = {}
    if name == "t1":
        kw["t1"] = draw(st.one_of(st.floats(-10.0, 0.0), nonfinite, not_numbers, st.just([T1])))
    elif name == "t0":
        bad = draw(st.one_of(st.floats(T1, 10.0), nonfinite, not_numbers))
        kw["t0"] = bad
        if isinstance(bad, float) and np.isfinite(bad):
            name = "t1"  # t0 >= t1 is reported as "t1 must be > t0 = ..."
    elif name == "ts":
        kw["ts"] = draw(st.one_of(
            st.lists(st.floats(0.0, T1), min_size=2, max_size=5).filter(lambda v: np.any(np.diff(v) < 0)),
            st.lists(st.floats(T1 + 1e-3, 10.0), min_size=1, max_size=3),     # beyond t1
            st.lists(st.floats(-10.0, -1e-3), min_size=1, max_size=3),       # before t0
            st.lists(nonfinite, min_size=1, max_size=3).map(lambda v: [0.0] + v),
            st.just([]), st.just(np.zeros((2, 2))), st.text(max_size=4), st.just([0.0, "a"])))
    elif name == "dt":
        bad = draw(st.one_of(st.floats(-1.0, 0.0), nonfinite, not_numbers.filter(lambda v: v is not None),
                             st.just([0.1]), st.just("grid")))  # dt=None is the adaptive mode
        if bad == "grid":  # a step size whose grid misses the save times by a third of a step
            kw["dt"], kw["ts"], name = 0.3, [0.0, 0.4], "in fixed-step mode every save time"
        else:
            kw["dt"] = bad
    elif name in ("rtol", "atol"):
        kw[name] = draw(st.one_of(st.floats(-1.0, 0.0), nonfinite, not_numbers))
        if isinstance(kw[name], float) and np.isfinite(kw[name]) and kw[name] <= 0:
            name = "rtol and atol"  # "rtol and atol must be > 0, got rtol=..., atol=..."
    elif name == "max_steps":
        kw[name] = draw(st.one_of(st.integers(max_value=0), st.floats(0.5, 99.5).filter(lambda v: v != int(v)),
                                  st.none(), st.booleans(), st.text(max_size=3)))
    elif name == "max_norm":
        kw[name] = draw(st.one_of(st.floats(-10.0, 0.0), st.just(float("nan")), not_numbers))
    elif name == "solver":
        kw[name] = draw(st.sampled_from(["tsit5", 5, diffrax.Euler(), diffrax.PIDController(rtol=1, atol=1)]))
    elif name in ("ema", "stop_grad", "progress"):  # None: a variant shorthand not given (ema, stop_grad)
        kw[name] = draw(st.one_of(st.text(max_size=3), st.integers(),
                                  *([st.none()] if name == "progress" else [])))
    elif name == "predictor":  # None: not given (the default predictor)
        kw[name] = draw(st.one_of(st.text(max_size=6).filter(lambda s: s not in ("learned", "symmetric", "identity")),
                                  st.integers()))
    else:
        kw[name] = draw(st.one_of(st.text(max_size=3), st.integers(), st.just([len])))
    return name, kw


@FAST
@given(bad_options())
def test_simulate_refuses_bad_options(case):
    name, kw = case
    kw = {"t1": T1, **kw}
    _raises_naming(name, lambda t1, **o: bd.simulate(S0, HP, DATA, t1, **o), **kw)


@RUNS
@given(positive.filter(lambda a: a < 5), st.floats(0.0, 0.1), st.floats(0.0, 2.0), st.floats(0.05, 1.0),
       st.sampled_from([None, 0.05, 0.1]), st.integers(0, 2**31))
@pytest.mark.slow
def test_simulate_runs_good_options(alpha_p, eta, beta, t1, dt, seed):
    s0 = bd.State.random(jax.random.PRNGKey(seed), 2, 2, scale=0.5)
    hp = bd.Hyper(alpha_p=alpha_p, eta=eta, beta=beta)
    if dt is None:
        ts = np.array([0.0, t1 / 2, t1])
        sol = bd.simulate(s0, hp, DATA, t1, ts=ts, rtol=1e-6, atol=1e-9, max_steps=1000)
    else:
        k = max(1, int(round(t1 / dt)))
        ts = dt * np.array([0, k // 2, k])  # on the grid (as floats, with their rounding)
        sol = bd.simulate(s0, hp, DATA, float(ts[-1]), ts=ts, dt=dt)
        assert int(sol.num_steps) == k
    assert sol.status_names() == "succeeded"
    W = np.asarray(sol.states.W)
    assert W.shape == (3, 2, 2) and np.all(np.isfinite(W))
    np.testing.assert_array_equal(W[0], np.asarray(s0.W))
