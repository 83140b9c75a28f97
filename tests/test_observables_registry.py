"""The observables registry: every level's outputs are registry names of the
registry's shape kind, one survival threshold, and registry functions against closed forms (THEORY.md 14)."""

import inspect
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import random_psd

import byoldyn as bd
from byoldyn import observables as ob
from byoldyn import sweep_levels as sl
from byoldyn.flows.modes import ModeState
from byoldyn.flows.symmetric import SymState
from byoldyn.report import simulation_dataset
from byoldyn.sampled.compare import OBSERVED as COMPARED

_AXES = {"scalar": 0, "mode": 1, "matrix": 2}


def _orthogonal(rng, n):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q


def _check_kinds(out: dict, lead: int, where: str):
    """Every key a registry name whose array has `lead` leading axes plus those of its kind."""
    for k, v in out.items():
        assert k in ob.REGISTRY, f"{where}: {k!r} is not a registry name"
        assert np.ndim(v) == lead + _AXES[ob.REGISTRY[k].kind], f"{where}: {k} has shape {np.shape(v)}"


def test_registry_entries():
    assert set(ob.KINDS) == {"scalar", "mode", "matrix"}
    for name, o in ob.REGISTRY.items():
        assert o.name == name and o.kind in ob.KINDS and o.long_name and isinstance(o.units, str) and o.units
        assert ob.attrs(name) == {"long_name": o.long_name, "units": o.units}
    # one name per concept: the per-mode cosines and their s-weighted mean are distinct entries
    assert ob.REGISTRY["alignment"].kind == "mode" and ob.REGISTRY["alignment_weighted"].kind == "scalar"
    assert set(ob.STANDARD) <= set(ob.REGISTRY) and set(ob.LEGACY_NAMES.values()) <= set(ob.REGISTRY)
    assert not set(ob.LEGACY_NAMES) & set(ob.REGISTRY)
    with pytest.raises(ValueError, match="unknown observable cos; the registry has norm_W"):
        ob.measure(["cos"], ob.Inputs(F=np.eye(2)))
    with pytest.raises(ValueError, match="unknown observable 'x'"):
        ob.attrs("x")
    with pytest.raises(ValueError, match="needs Wp, which this level does not provide"):
        ob.measure(["asymmetry"], ob.Inputs(F=np.eye(2)))
    with pytest.raises(ValueError, match="recorded by the training loop"):
        ob.REGISTRY["loss"](ob.Inputs())
    with pytest.raises(ValueError, match="kind must be one of"):
        ob.Observable("x", "x", "vector", "1", None)


@pytest.mark.slow
@pytest.mark.parametrize("level", ["modes", "symmetric", "matrix"])
def test_sweep_levels_output_registry_names(level):
    seeds = jnp.arange(3)
    y = sl.initial(level, bd.Variant(), seeds, jnp.full(3, 0.5), 3, 3, jnp.float64)
    out = sl.OBS[level](y, ob.SURVIVAL)
    assert tuple(out) == sl.LEVEL_OUTPUTS[level]
    _check_kinds(out, 1, level)
    for n, pm, long in sl.OBSERVABLES[level]:  # the triples the sweep stores are the registry's
        assert pm == ob.REGISTRY[n].per_mode and long == ob.REGISTRY[n].long_name
        assert sl.per_mode(level, n) == pm
    assert "alignment" not in out  # a sweep keeps the scalar alignment_weighted only


@pytest.mark.slow
def test_simulate_standard_and_dataset_attrs():
    data = bd.Data.isotropic(3, 0.3)
    s0 = bd.State.random(jax.random.PRNGKey(1), 3, 3, scale=0.5)
    h = bd.Hyper(alpha_p=1.0, eta=0.01, beta=0.5)
    sol = bd.simulate(s0, h, data, 1.0, ts=np.linspace(0, 1, 3), observe=ob.standard(h, data, s0))
    assert set(sol.observed) == set(ob.STANDARD)
    _check_kinds(sol.observed, 1, "simulate")
    ds = simulation_dataset(sol, {"seed": 0})
    for k in ob.STANDARD:
        assert {a: ds[k].attrs[a] for a in ("long_name", "units")} == ob.attrs(k)
        assert ds[k].dims == ("time",) + (("mode",) if ob.REGISTRY[k].per_mode else ())
    assert ds.attrs["threshold"] == ob.SURVIVAL


def test_sampled_compare_and_network_outputs_registry_names(rng):
    s = bd.State(rng.standard_normal((3, 4)), rng.standard_normal((3, 3)), rng.standard_normal((3, 4)))
    out = ob.measure(COMPARED, ob.Inputs(W=s.W, Wp=s.Wp, Wa=s.Wa, data=bd.Data.isotropic(4, 0.2)))
    _check_kinds(out, 0, "sampled.compare")
    pytest.importorskip("flax")
    from byoldyn.nets import instrument

    F_ = random_psd(rng, 5)
    K = rng.standard_normal((6, 5))
    params = {"a": jnp.asarray(rng.standard_normal((2, 3))), "projector": {"fc2": {"kernel": jnp.asarray(K)}}}
    target = jax.tree.map(lambda x: 0.5 * x, params)
    state = SimpleNamespace(corr=jnp.asarray(F_), cross=0.5 * jnp.asarray(F_), online=params, target=target,
                            pred=None)
    rec = instrument.observe(state, "none")  # Wp = I
    _check_kinds(rec, 0, "nets")
    assert set(instrument.OBSERVED) | {"F", "Wp"} == set(rec)
    assert set(instrument.SCALARS) <= set(ob.REGISTRY)
    np.testing.assert_allclose(rec["alignment"], 1.0, rtol=1e-6)  # Wp = I is aligned with every u_j
    assert rec["tau_hat"] == pytest.approx(0.5, rel=1e-6) and rec["wa_correlation"] == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(rec["s"], np.linalg.eigvalsh(F_)[::-1], rtol=1e-5)
    np.testing.assert_allclose(rec["two_view_ratio"], 0.5, rtol=1e-5)  # cross = F̂ / 2
    U = np.linalg.eigh(F_)[1][:, ::-1]
    np.testing.assert_allclose(rec["gram"], np.einsum("ij,ik,kj->j", U, K.T @ K, U), rtol=1e-5)
    log = instrument.RunLog("unused.nc")
    log.append(1, 0.5, dict(rec, loss=0.1, z_std=0.2, h_std=0.3, lr=0.01))
    ds = log.dataset()
    for k in ds.data_vars:
        assert ds[k].attrs["long_name"] == ob.REGISTRY[k].long_name and ds[k].attrs["units"] == ob.REGISTRY[k].units
        assert ds[k].ndim == 1 + _AXES[ob.REGISTRY[k].kind], k


@pytest.mark.slow
def test_one_survival_threshold():
    """Every default is SURVIVAL; a mode just above it survives and one just below does not, at each level."""
    assert ob.SURVIVAL == 1e-4
    for f in (ob.standard, ob.n_modes, ob.Inputs):
        assert inspect.signature(f).parameters["threshold"].default == ob.SURVIVAL, f
    assert inspect.signature(bd.sweep).parameters["threshold"].default == ob.SURVIVAL
    assert inspect.signature(bd.phase.basin_map).parameters["threshold"].default == ob.SURVIVAL
    s = np.array([1.0, ob.SURVIVAL * (1 + 1e-9), ob.SURVIVAL * (1 - 1e-9), 0.0])
    U = _orthogonal(np.random.default_rng(3), 4)
    W = U @ np.diag(np.sqrt(s))  # F = W Wᵀ = U diag(s) Uᵀ
    y_modes = ModeState(jnp.asarray(np.sqrt(s))[None], jnp.ones((1, 4)), jnp.zeros((1, 4)))
    y_sym = SymState(jnp.eye(4)[None], jnp.asarray(W @ W.T)[None], jnp.zeros(1))
    y_mat = bd.State(W[None], np.eye(4)[None], np.zeros((1, 4, 4)))
    for level, y in (("modes", y_modes), ("symmetric", y_sym), ("matrix", y_mat)):
        out = sl.OBS[level](y, ob.SURVIVAL)
        assert float(out["n_modes"][0]) == 2.0 and float(out["collapsed"][0]) == 0.0, level
        # negative control: a threshold a decade up drops the second mode
        assert float(sl.OBS[level](y, 10 * ob.SURVIVAL)["n_modes"][0]) == 1.0, level
    assert int(ob.n_modes(W @ W.T)) == 2
    # the network level: relative to the largest mode (here 1), so any scale of F gives the same count
    for scale in (1e-6, 1.0, 1e6):
        q = ob.Inputs(F=scale * (W @ W.T), relative=True)
        assert float(ob.REGISTRY["n_modes"](q)) == 2.0
    assert float(ob.REGISTRY["n_modes"](ob.Inputs(F=1e-6 * (W @ W.T)))) == 0.0  # absolute: all below
    assert float(ob.REGISTRY["collapsed"](ob.Inputs(F=1e-6 * (W @ W.T)))) == 1.0


@pytest.mark.slow
def test_closed_forms(rng):
    U = _orthogonal(rng, 4)
    s = np.array([4.0, 3.0, 2.0, 1.0])
    F_ = U @ np.diag(s) @ U.T
    names = ("alignment", "alignment_weighted", "asymmetry", "commutator", "effective_rank", "s", "p")
    # an aligned pair: Wp = U diag(p) Uᵀ with p > 0 -> cos_j = 1, weighted 1, commutator 0, asymmetry 0
    p = np.array([0.5, 2.0, 1.5, 0.7])
    o = ob.measure(names, ob.Inputs(F=F_, Wp=U @ np.diag(p) @ U.T))
    np.testing.assert_allclose(o["alignment"], 1.0, rtol=1e-13)
    assert float(o["alignment_weighted"]) == pytest.approx(1.0, rel=1e-13)
    assert float(o["commutator"]) < 1e-13 and float(o["asymmetry"]) < 1e-15
    np.testing.assert_allclose(o["s"], s, rtol=1e-13)
    np.testing.assert_allclose(o["p"], np.sort(p)[::-1], rtol=1e-13)
    # negative control: Wp a rotation by theta in the plane of u1, u2 -> cos theta on both, the weighted
    # mean ((4 + 3) cos theta + 2 + 1) / 10, asymmetry ‖R - Rᵀ‖_F / ‖R‖_F = 2 sqrt(2) sin theta / 2
    th = 0.3
    R = np.eye(4)
    R[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    o = ob.measure(names, ob.Inputs(F=F_, Wp=U @ R @ U.T))
    np.testing.assert_allclose(o["alignment"], [np.cos(th), np.cos(th), 1, 1], rtol=1e-12)
    assert float(o["alignment_weighted"]) == pytest.approx((7 * np.cos(th) + 3) / 10, rel=1e-12)
    assert float(o["asymmetry"]) == pytest.approx(2 * np.sqrt(2) * np.sin(th) / 2, rel=1e-12)
    assert float(o["commutator"]) > 0.1
    # effective rank: I_n -> n; a rank-one F -> 1 (control); F = 0 -> 0, alignment_weighted undefined (NaN)
    for n in (1, 3, 7):
        assert float(ob.REGISTRY["effective_rank"](ob.Inputs(F=np.eye(n)))) == pytest.approx(n, rel=1e-13)
    assert float(ob.REGISTRY["effective_rank"](ob.Inputs(F=np.diag([2.0, 0, 0])))) == pytest.approx(1.0, rel=1e-13)
    z = ob.Inputs(F=np.zeros((3, 3)), Wp=np.eye(3))
    assert float(ob.REGISTRY["effective_rank"](z)) == 0.0 and np.isnan(ob.REGISTRY["alignment_weighted"](z))
    # EMA target: Wa = tau W + (orthogonal) -> tau_hat = tau; Wa = -2 W -> correlation -1; W = 0 -> 0, never NaN
    W = rng.standard_normal((3, 5))
    E = rng.standard_normal((3, 5))
    E -= np.sum(E * W) / np.sum(W * W) * W
    o = ob.measure(("tau_hat", "wa_correlation", "norm_W"), ob.Inputs(W=W, Wa=0.7 * W + E))
    assert float(o["tau_hat"]) == pytest.approx(0.7, rel=1e-12)
    assert float(o["wa_correlation"]) == pytest.approx(0.7 * np.linalg.norm(W) / np.linalg.norm(0.7 * W + E), rel=1e-12)
    assert float(o["norm_W"]) == pytest.approx(np.linalg.norm(W), rel=1e-14)
    assert float(ob.REGISTRY["wa_correlation"](ob.Inputs(W=W, Wa=-2 * W))) == pytest.approx(-1.0, rel=1e-12)
    assert float(ob.REGISTRY["tau_hat"](ob.Inputs(W=0 * W, Wa=W))) == 0.0


def test_levels_agree_on_a_diagonal_state():
    """W, Wp diagonal in the same basis: the mode, symmetric and matrix levels give the same observables."""
    w = np.array([1.5, 0.8, 0.3, 1e-3])
    wp = np.array([0.9, 0.4, 0.2, 0.1])
    wa = np.array([0.5, 0.1, 0.3, 0.0])
    ym = ModeState(jnp.asarray(w)[None], jnp.asarray(wp)[None], jnp.asarray(wa)[None])
    tau = np.sum(wa * w) / np.sum(w * w)
    ys = SymState(jnp.diag(jnp.asarray(wp))[None], jnp.diag(jnp.asarray(w * w))[None],
                                     jnp.asarray([tau]))
    yx = bd.State(np.diag(w)[None], np.diag(wp)[None], np.diag(wa)[None])
    om, os_, ox = (sl.OBS[lv](y, ob.SURVIVAL) for lv, y in (("modes", ym), ("symmetric", ys), ("matrix", yx)))
    for k in ("norm_W", "n_modes", "collapsed", "tau_hat", "s", "p"):
        np.testing.assert_allclose(om[k], ox[k], rtol=1e-13, err_msg=k)
        np.testing.assert_allclose(os_[k], ox[k], rtol=1e-13, err_msg=k)
    assert float(ox["tau_hat"][0]) == pytest.approx(tau, rel=1e-13)
    np.testing.assert_allclose(ox["alignment_weighted"], 1.0, rtol=1e-13)  # diagonal pair: aligned
    np.testing.assert_allclose(os_["alignment_weighted"], 1.0, rtol=1e-13)
    assert float(ox["asymmetry"][0]) == 0.0 and float(ox["n_modes"][0]) == 3.0


def test_theorem1_residual_through_the_registry(rng):
    s = bd.State(rng.standard_normal((3, 4)), rng.standard_normal((3, 3)))
    h = bd.Hyper(alpha_p=2.0, eta=0.1)
    C = ob.theorem1_C(s, h)
    q = ob.Inputs(W=s.W, Wp=s.Wp, Wa=s.Wa, t=1.0, C=C, hyper=h)
    want = (1 - np.exp(-0.2)) * np.linalg.norm(C) / np.linalg.norm(np.asarray(s.W) @ np.asarray(s.W).T)
    assert float(ob.REGISTRY["theorem1_residual"](q)) == pytest.approx(want, rel=1e-12)
    q0 = ob.Inputs(W=s.W, Wp=s.Wp, Wa=s.Wa, t=0.0, C=C, hyper=h)
    assert float(ob.REGISTRY["theorem1_residual"](q0)) == 0.0


def test_upgrade_legacy_network_log_names():
    m = np.arange(6.0).reshape(2, 3)
    old = xr.Dataset({"cos": (("step", "mode"), m), "spec_Wp": (("step", "mode"), m + 1),
                      "p": (("step", "mode"), m + 2), "s": (("step", "mode"), m + 3)})
    new = ob.upgrade_names(old)
    assert set(new.data_vars) == {"alignment", "p", "p_rayleigh", "s"}
    np.testing.assert_array_equal(new.alignment, m)
    np.testing.assert_array_equal(new.p, m + 1)  # the spectrum of sym(Wp), as everywhere else
    np.testing.assert_array_equal(new.p_rayleigh, m + 2)
    assert ob.upgrade_names(new) is new  # registry names are left as they are
    unslimmed = ob.upgrade_names(old.drop_vars("p"))
    assert set(unslimmed.data_vars) == {"alignment", "p", "s"}
    assert json.dumps(sorted(ob.LEGACY_NAMES)) == '["cos", "spec_Wp"]'


def test_two_view_ratio_and_gram_at_the_matrix_level(rng):
    """With commuting diagonal data and W, Wa = τ W diagonal, the two-view ratio is the mode theory's τ/κ_j =
    τ x_j/(x_j + x'_j) (docs/anisotropic_modes.md A2) and the Gram is w_j²; a rotated W gives the same along u_j."""
    x, xp, tau = np.array([3.0, 1.0, 0.5]), np.array([0.5, 0.2, 0.5]), 0.9
    data = bd.Data.diagonal(x, xp)
    w = np.array([1.0, 0.7, 0.2])
    Q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    for W in (np.diag(w), Q @ np.diag(w)):  # output rotated: F = Q diag(x w²) Qᵀ, the same spectrum
        q = ob.Inputs(W=jnp.asarray(W), Wa=tau * jnp.asarray(W), Wp=jnp.eye(3), data=data)
        got = ob.measure(["two_view_ratio", "gram", "s"], q)
        order = np.argsort(-x * w**2)
        np.testing.assert_allclose(got["s"], (x * w**2)[order], rtol=1e-12)
        np.testing.assert_allclose(got["two_view_ratio"], (tau * x / (x + xp))[order], rtol=1e-12)
        np.testing.assert_allclose(got["gram"], (w**2)[order], rtol=1e-12)
    with pytest.raises(ValueError, match="F_views"):
        ob.measure(["two_view_ratio"], ob.Inputs(W=jnp.eye(3), Wa=jnp.eye(3)))
