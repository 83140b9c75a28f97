"""Phase-plane tools: RK4 accuracy, basin maps against the closed-form basin boundary p*_- (section 7.4)."""

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

import byoldyn as bd
from byoldyn import phase, theory
from byoldyn.flows.modes import ModePST, pst_field


def _decay(y, rate):
    return -rate * y


@pytest.mark.slow
def test_rk4_matches_closed_form():
    y0 = jnp.linspace(-1.0, 1.0, 7)
    y1 = phase.rk4(_decay, y0, 3.0, args=(jnp.asarray(0.7),), dt=0.01)
    np.testing.assert_allclose(y1, np.exp(-2.1) * np.asarray(y0), rtol=1e-10, atol=0)
    ts, path = phase.rk4(_decay, y0, 3.0, args=(jnp.asarray(0.7),), dt=0.01, n_save=6)
    assert path.shape == (7, 7) and ts[-1] == 3.0
    np.testing.assert_allclose(path[:, -1], np.exp(-0.7 * ts), rtol=1e-10)
    with pytest.raises(ValueError, match=r"t1 and dt must be finite and > 0"):
        phase.rk4(_decay, y0, -1.0, args=(0.7,))


@pytest.mark.parametrize("eta", [0.01, 0.1])
def test_basin_boundary_on_parabola_is_p_minus(eta):
    """Starts on s = p²/α_p with fixed τ: collapsed iff p < p*_−, to within one grid cell."""
    tau, kappa, alpha_p = 1.0, 1.5, 2.0
    p = np.linspace(0.0, 1.0, 401)
    y0 = ModePST(jnp.asarray(p), jnp.asarray(p * p / alpha_p), jnp.full(p.shape, tau))
    yf, col = phase.basin_map(pst_field, y0, 2000.0, args=(bd.Hyper(alpha_p=alpha_p, eta=eta), kappa, False), dt=0.05)
    pm, pp = (float(v) for v in theory.p_star(tau, kappa, eta))
    edge = p[np.argmax(~col)]
    assert np.all(col[p < pm]) and np.all(~col[p > pm])
    assert abs(edge - pm) <= p[1] - p[0]
    np.testing.assert_allclose(np.asarray(yf.p)[~col], pp, atol=1e-8)  # survivors reach p*_+


@pytest.mark.slow
def test_basin_map_grid_above_eta_c_all_collapse():
    tau, kappa = 1.0, 1.5
    eta = 1.05 * float(theory.eta_c(tau, kappa))
    P, S = np.meshgrid(np.linspace(-0.5, 1.5, 64), np.linspace(0.0, 2.0, 64))
    y0 = ModePST(jnp.asarray(P), jnp.asarray(S), jnp.full(P.shape, tau))
    _, col = phase.basin_map(pst_field, y0, 1500.0, args=(bd.Hyper(eta=eta), kappa, False), dt=0.05)
    assert col.shape == (64, 64) and col.all()


def test_portrait_draws_fixed_points_by_stability():
    fig, ax = plt.subplots()
    phase.portrait(ax, lambda x, y: (-x, y), (-1, 1), (-1, 1), fixed_points=[(0.0, 0.0, False), (0.5, 0.5, True)],
                   trajectories=[(np.array([0.5, 0.1]), np.array([0.1, 0.2]))], parabola_alpha_p=1.0)
    colors = [ln.get_color() for ln in ax.lines if ln.get_marker() == "o" and len(ln.get_xdata()) == 1]
    assert phase.STABLE_COLOR in colors and phase.UNSTABLE_COLOR in colors
    plt.close(fig)
