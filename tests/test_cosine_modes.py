"""The cosine loss at the mode level (docs/cosine_loss.md, Eqs. C1-C7): the mode field against the matrix field on
diagonal states, scale invariance and the invariants, the closed-form end point, weight decay above η_c (Bao 2023)
with the Euclidean loss as the control, and the sweeps' handling of the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import byoldyn as bd
from byoldyn import sweep_levels as sl
from byoldyn.figures.cosine import clock
from byoldyn.flows.matrix import expected_cosine_loss
from byoldyn.flows.modes import ModeState, cosine_mode_field, cosine_mode_loss, mode_field, solve_modes

X, XP = np.array([2.0, 1.0, 0.8, 0.3]), np.array([0.3, 0.2, 2.0, 0.1])
VARIANTS = [(True, True), (False, True), (False, False)]  # (ema, stop_grad): BYOL, SimSiam, no stop-gradient


def _diag_state(w, wp, T):
    return bd.State(np.diag(w), np.diag(wp), np.diag(T))


@pytest.mark.parametrize("data", [bd.Data.diagonal(X, XP), bd.Data.isotropic(4, sigma2=0.7)], ids=["diag", "iso"])
@pytest.mark.parametrize("ema,stop_grad", VARIANTS, ids=["byol", "simsiam", "no-stop-grad"])
def test_mode_field_is_the_matrix_field_on_diagonal_states(rng, data, ema, stop_grad):
    """Eqs. C2-C3 (C3' without stop-gradient) = the diagonal of `vector_field(Variant(loss="cosine"))`, whose
    off-diagonal entries are 0: diagonal states stay diagonal. Float64 rounding: 1e-10."""
    w, wp, wa = rng.standard_normal((3, 4))
    T = wa if ema else w
    h = bd.Hyper(alpha_p=1.7, eta=0.13, beta=0.6, eta_p=0.07)
    d = bd.vector_field(_diag_state(w, wp, T), h, data, variant=bd.Variant(ema=ema, stop_grad=stop_grad, loss="cosine"))
    m = cosine_mode_field(ModeState(w, wp, T), h, data, tau=None if ema else 1.0, stop_grad=stop_grad)
    for a, b in zip((d.W, d.Wp, d.Wa), m):
        a = np.asarray(a)
        assert np.abs(np.diag(a) - np.asarray(b)).max() <= 1e-10
        assert np.abs(a - np.diag(np.diag(a))).max() <= 1e-15
    # the loss too (Eq. C1)
    want = float(expected_cosine_loss(np.diag(w), np.diag(wp), np.diag(T), *data.matrices()))
    assert abs(float(cosine_mode_loss(ModeState(w, wp, T), data, tau=None if ema else 1.0)) - want) <= 1e-12


def test_mode_field_batches_over_leading_axes(rng):
    """Members on leading axes, modes on the last: each member's sums are its own."""
    y = ModeState(*rng.standard_normal((3, 5, 4)))
    data, h = bd.Data.diagonal(X, XP), bd.Hyper(eta=0.1)
    d = cosine_mode_field(y, h, data)
    for i in range(5):
        one = cosine_mode_field(ModeState(y.w[i], y.w_p[i], y.w_a[i]), h, data)
        assert all(np.allclose(np.asarray(a)[i], np.asarray(b), rtol=0, atol=1e-15) for a, b in zip(d, one))


def test_scale_invariance_and_invariants(rng):
    """J_cos is invariant to w, p, T → c w, c p, c T separately (c > 0); the loss part of the field is homogeneous of
    degree −1 jointly; Σ w ẇ = −η Σ w², Σ p ṗ = −η_p Σ p² and d/dt (w_j² − p_j²/α_p) = −2η (…) for η_p = η (C4)."""
    w, wp, wa = rng.standard_normal((3, 4))
    data = bd.Data.diagonal(X, XP)
    J = float(cosine_mode_loss(ModeState(w, wp, wa), data))
    for c in (0.1, 3.0):
        for y in (ModeState(c * w, wp, wa), ModeState(w, c * wp, wa), ModeState(w, wp, c * wa)):
            assert abs(float(cosine_mode_loss(y, data)) - J) <= 1e-13
    h0 = bd.Hyper(alpha_p=1.7, eta=0.0, beta=0.6)
    d1 = cosine_mode_field(ModeState(w, wp, wa), h0, data)
    d3 = cosine_mode_field(ModeState(3 * w, 3 * wp, 3 * wa), h0, data)
    assert np.allclose(3 * np.asarray(d3.w), np.asarray(d1.w), rtol=1e-12, atol=0)
    assert np.allclose(3 * np.asarray(d3.w_p), np.asarray(d1.w_p), rtol=1e-12, atol=0)
    h = bd.Hyper(alpha_p=1.7, eta=0.2, beta=0.6, eta_p=0.2)
    d = cosine_mode_field(ModeState(w, wp, wa), h, data)
    dw, dp = np.asarray(d.w), np.asarray(d.w_p)
    assert abs(np.sum(w * dw) + 0.2 * np.sum(w * w)) <= 1e-13 * np.sum(w * w)
    assert abs(np.sum(wp * dp) + 0.2 * np.sum(wp * wp)) <= 1e-13 * np.sum(wp * wp)
    dc = 2 * w * dw - 2 * wp * dp / 1.7
    assert np.allclose(dc, -0.4 * (w * w - wp * wp / 1.7), rtol=0, atol=1e-13)


def test_fixed_points_p_proportional_to_one_over_kappa():
    """Eq. C6: with T = w, p_j ∝ x_j/(x_j + x'_j) (any common scale, any w) is a fixed point of the loss part; the
    Euclidean field (control) is not at rest there unless the scale is τ."""
    data = bd.Data.diagonal(X, XP)
    w = np.array([0.3, 1.2, 0.7, 2.0])
    for lam in (0.2, 1.0, 5.0):
        y = ModeState(w, lam * X / (X + XP), w)
        d = cosine_mode_field(y, bd.Hyper(eta=0.0), data, tau=1.0)
        assert np.abs(np.asarray(d.w)).max() <= 1e-14 and np.abs(np.asarray(d.w_p)).max() <= 1e-14
    e = mode_field(ModeState(w, 0.2 * X / (X + XP), w), bd.Hyper(eta=0.0), data, tau=1.0)
    assert np.abs(np.asarray(e.w)).max() > 0.1


def test_closed_form_end_point_respects_the_invariants():
    """`theory.cosine_fixed_point`: ‖p‖ is conserved, s_j − p_j²/α_p = c_j on the surviving modes, p_j κ_j equal there."""
    w0, p0 = np.array([0.8, 0.9, 0.6, 0.05]), np.array([0.3, 0.4, 0.2, -0.3])
    data = bd.Data.diagonal(X, XP)
    alive = np.array([True, True, True, False])
    p, s = (np.asarray(v) for v in bd.theory.cosine_fixed_point(w0, p0, data, 2.0, alive))
    assert abs(np.sum(p * p) - np.sum(p0 * p0)) <= 1e-12
    c = w0 * w0 - p0 * p0 / 2.0
    assert np.allclose((s - p * p / 2.0)[alive], c[alive], rtol=0, atol=1e-12) and s[3] == 0.0
    assert np.allclose(p[3] ** 2, -2.0 * c[3]) and p[3] < 0
    k = (X + XP) / X
    assert np.ptp((p * k)[alive]) <= 1e-12


@pytest.mark.slow
def test_bao_mode_level_clock_and_end_point_with_euclidean_control():
    """Bao 2023 at the mode level (SimSiam, X = diag(x), X' = diag(x'), η = 0.5 above every η_c(j)): the rescaled
    state (w, p) e^{ηt} equals the η = 0 state at s(t) (Eq. C5) to the solves' tolerance (1e-7), and it ends at
    Eq. C6's point (1e-6, run to s = 40). Control: the Euclidean loss fails both by O(1). Measured: 3e-12, 5e-11;
    Euclidean 2.5, 15."""
    data = bd.Data.diagonal(X, XP)
    w0, p0 = np.array([0.8, 0.9, 0.6, 0.7]), np.array([0.3, 0.4, 0.2, 0.3])
    y0 = ModeState(jnp.asarray(w0), jnp.asarray(p0), jnp.asarray(w0))
    eta = 0.5
    ts = np.linspace(0.0, np.log1p(2 * eta * 40.0) / (2 * eta), 9)
    P, S = (np.asarray(v) for v in bd.theory.cosine_fixed_point(w0, p0, data, 1.0))
    out = {}
    for name in ("cosine", "euclidean"):
        cos = jnp.asarray(name == "cosine")
        a = solve_modes(_simsiam, y0, float(ts[-1]), args=(bd.Hyper(eta=eta), data, cos), ts=ts, rtol=1e-11,
                        atol=1e-13)
        b = solve_modes(_simsiam, y0, float(clock(ts[-1], eta)), args=(bd.Hyper(eta=0.0), data, cos),
                        ts=clock(ts, eta), rtol=1e-11, atol=1e-13)
        assert a.status_names() == b.status_names() == "succeeded"
        g = np.exp(eta * ts)[:, None]
        u, v = np.asarray(a.states.w) * g, np.asarray(a.states.w_p) * g
        d_clock = max(np.abs(u - np.asarray(b.states.w)).max(), np.abs(v - np.asarray(b.states.w_p)).max())
        d_end = max(np.abs(v[-1] - P).max() / P.max(), np.abs(u[-1] ** 2 - S).max() / S.max())
        out[name] = (d_clock, d_end)
    print(out)
    assert out["cosine"][0] <= 1e-7 and out["cosine"][1] <= 1e-6
    assert out["euclidean"][0] > 0.1 and out["euclidean"][1] > 0.1


def _simsiam(y, hyper, data, cos):
    """SimSiam's mode field, the cosine loss where `cos` else Eq. 1 (one compiled solve for claim and control)."""
    c, e = cosine_mode_field(y, hyper, data, tau=1.0), mode_field(y, hyper, data, tau=1.0)
    return jax.tree.map(lambda a, b: jnp.where(cos, a, b), c, e)


def test_sweep_mode_level_runs_the_cosine_field_and_the_sweep_refuses_it(rng):
    """The sweeps' mode level (`sweep_levels.RHS["modes"]`) dispatches `Variant(loss="cosine")` to the cosine
    field (members on the first axis, σ² per member as a column); `byoldyn.sweep` still refuses the loss, naming
    where it runs; the symmetric level has no cosine flow."""
    y = ModeState(*(jnp.asarray(a) for a in rng.standard_normal((3, 2, 4))))
    h = bd.Hyper(alpha_p=jnp.array([[1.0], [2.0]]), eta=jnp.array([[0.1], [0.2]]), beta=jnp.array([[1.0], [0.5]]))
    s2 = jnp.array([[0.5], [1.0]])
    d = sl.RHS["modes"](y, h, s2, bd.Variant(loss="cosine"))
    for i in range(2):
        hi = bd.Hyper(alpha_p=float(h.alpha_p[i, 0]), eta=float(h.eta[i, 0]), beta=float(h.beta[i, 0]))
        want = cosine_mode_field(ModeState(y.w[i], y.w_p[i], y.w_a[i]), hi, 1.0 + float(s2[i, 0]))
        assert all(np.allclose(np.asarray(a)[i], np.asarray(b), rtol=1e-13, atol=1e-15) for a, b in zip(d, want))
    e = sl.RHS["modes"](y, h, s2, bd.Variant())
    assert not np.allclose(np.asarray(e.w), np.asarray(d.w))
    with pytest.raises(ValueError, match="cosine_mode_field"):
        bd.sweep(level="modes", variant=bd.Variant(loss="cosine"), sigma2=[0.5], eta=[0.0], t1=1.0, n1=2,
                 progress=False)
    with pytest.raises(ValueError, match="no symmetric-level flow"):
        sl.RHS["symmetric"](None, h, s2, bd.Variant(loss="cosine"))


def test_cosine_mode_field_validates():
    y = ModeState(jnp.ones(3), jnp.ones(3), jnp.ones(3))
    with pytest.raises(ValueError, match="stop_grad=False needs a fixed tau"):
        cosine_mode_field(y, bd.Hyper(), 1.5, stop_grad=False)
    with pytest.raises(ValueError, match="ModeState"):
        cosine_mode_field((1.0, 1.0, 1.0), bd.Hyper(), 1.5)


def test_zero_target_gives_no_gradient_not_nan():
    """w_a = 0 (N2 = 0): J_cos = 1 and only weight decay acts, as at the matrix level."""
    y = ModeState(jnp.array([0.5, 1.0]), jnp.array([0.3, 0.2]), jnp.zeros(2))
    d = cosine_mode_field(y, bd.Hyper(eta=0.1), 1.5)
    assert float(cosine_mode_loss(y, 1.5)) == 1.0
    assert np.allclose(np.asarray(d.w), -0.1 * np.asarray(y.w), rtol=0, atol=1e-15)
    assert np.all(np.isfinite(np.asarray(jax.tree.leaves(d))))
