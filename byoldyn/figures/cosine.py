"""The cosine loss (docs/cosine_loss.md): the mean-field flow against the exact loss as n grows, its mode level
(Eqs. C1-C7), and Bao's claim that with feature normalisation weight decay above η_c no longer collapses the
dynamics. `fig_cosine_loss` checks the mode level against the matrix level, the closed-form end points of both
levels at weight decay above every collapse threshold, with the Euclidean loss as the control, and reports the
mean-field error against minibatch SGD on the exact loss.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import theory
from ..flows.matrix import expected_cosine_loss, vector_field
from ..flows.modes import ModeState, cosine_mode_field, mode_field, solve_modes
from ..model import Data, Hyper, State
from ..predictors import Variant
from ..sampled import Setup, Source, train
from ..sampled.dictionary import from_flow
from ..solution import SUCCEEDED
from ..stepper import adaptive_solve, fixed_solve
from .common import Check, Finding, Z, diff_ci, mean_se, note

__all__ = ["fig_cosine_loss", "clock"]

ALPHA_P, SIGMA2 = 1.0, 0.5
#: the mode level's data (the anisotropic figure's sampled spectrum): SimSiam thresholds η_c(j) = x_j² / (4 (x_j +
#: x'_j)) = 0.435, 0.208, 0.057, 0.056, and weight decays from 0 to above all of them
X_MODES, XP_MODES = (2.0, 1.0, 0.8, 0.3), (0.3, 0.2, 2.0, 0.1)
ETAS = (0.0, 0.1, 0.3, 0.5)
#: the starts of the mode level: A has c_j = w_j² − p_j²/α_p > 0 in every mode (no mode can die, Eq. C4); B is A
#: with mode 3 small and its predictor negative (c_3 < 0, p_3 < 0: the collapsed branch is stable there)
W0_A, P0_A = (0.8, 0.9, 0.6, 0.7), (0.3, 0.4, 0.2, 0.3)
W0_B, P0_B = (0.8, 0.9, 0.6, 0.05), (0.3, 0.4, 0.2, -0.3)
#: the η = 0 flow's time that every run reaches on the clock s = (e^{2ηt} − 1)/(2η) (Eq. C5): the mode level's
#: η = 0 runs converge to their end points well within it (the mode claim's η = 0 member shows it), the matrix
#: level's generic start (‖W‖_F ≈ 4, so its normalised rates are ~1/16 of the modes') gets ten times more
S_MODES, S_MATRIX = 40.0, 400.0
#: the matrix level's Bao run: n = 4, isotropic σ², SimSiam, η = 3 η_c (η_c = 1/(4κ) = 1/6)
N_BAO, ETA_BAO = 4, 0.5
RTOL, ATOL = 1e-11, 1e-13
RTOL_M, ATOL_M = 1e-10, 1e-12
NSAVE = 41
# Criteria, fixed before the runs:
# - TOL_FIELD: the mode field against the matrix field at the same diagonal state, both in float64: the same sums
#   in another order, rounding (1e-16) times the size of the terms (O(10) at these states): 1e-10 leaves 4 decades.
# - TOL_TRAJ: a mode-level and a matrix-level adaptive solve of the same flow, each to rtol <= 1e-10, on a
#   contracting flow: their saves differ by a few rtol; 1e-7 (relative to the state's size) leaves two decades.
# - TOL_END: the end point against its closed form (Eqs. C6, C7). The rescaled flow is the η = 0 flow on the clock
#   s (exactly, for SimSiam with η_p = η, Eq. C5), run to s = 40 (modes) or 400 (matrix), where its residual
#   is below the solver's rtol by the η = 0 runs; the conserved quantities that fix the end point (Eq. C4) hold
#   to the solve's rtol times the number of steps (< 1e5): 1e-6.
# - TOL_CLOCK: the rescaled state at η against the η = 0 state at s(t) (Eq. C5): two solves of one flow, as
#   TOL_TRAJ: 1e-7 relative.
# - alive: with the cosine loss every w_j shrinks as e^{−ηt}, so a mode is alive when its share w_j² / Σ_k w_k²
#   exceeds 1e-6 at the end (a live mode's closed-form share is >= 0.05 here; a dying one falls exponentially on
#   the clock s). With the Euclidean loss a live mode sits at s_j = p*_+(j)²/α_p >= 0.04 and a dying one decays
#   at least as e^{−2 (η − η_c(j)) t} (A3; every η here is >= 0.04 from every threshold: e^-32 by t = 400), so
#   there a mode is alive when s_j(400) = w_j² exceeds 1e-6 (A3's criterion; shares would miss a total collapse,
#   where every w_j decays at the same rate).
TOL_FIELD, TOL_TRAJ, TOL_END, TOL_CLOCK, ALIVE = 1e-10, 1e-7, 1e-6, 1e-7, 1e-6


def clock(t, eta):
    """s = (e^{2ηt} − 1)/(2η) (t at η = 0): the time of the η = 0 flow that the rescaled cosine flow at weight decay
    η has reached at t (Eq. C5; SimSiam, η_p = η)."""
    t, eta = np.asarray(t, float), float(eta)
    return t if eta == 0 else np.expm1(2 * eta * t) / (2 * eta)


def _t_of_s(s, eta):
    return float(s) if eta == 0 else float(np.log1p(2 * eta * s) / (2 * eta))


def _mode_rhs(y, hyper, data, cos, learned):
    """The claim's and the control's mode field in one compiled solve: SimSiam (τ = 1) with the cosine loss
    (Eqs. C2-C3) where `cos`, Eq. 1's `mode_field` elsewhere; w_p fixed (Wp = I) where not `learned`."""
    dc = cosine_mode_field(y, hyper, data, tau=1.0)
    de = mode_field(y, hyper, data, tau=1.0)
    d = jax.tree.map(lambda a, b: jnp.where(cos, a, b), dc, de)
    return ModeState(d.w, jnp.where(learned, d.w_p, 0.0), d.w_a)


def _mode_runs(data):
    """Per η: the cosine runs (starts A, B, and A with Wp = I) to t = T_η (s = S_MODES) and the Euclidean runs from
    the same starts, saved on the cosine's times and at t = 400. Returns {η: (ts_cos, cos_states, ts_euc,
    euc_states)} (states (saves, 3 starts, modes)) and the solver statuses."""
    w = np.array([W0_A, W0_B, W0_A])
    p = np.array([P0_A, P0_B, [1.0] * len(W0_A)])
    y0 = ModeState(jnp.asarray(w), jnp.asarray(p), jnp.asarray(w))
    learned = jnp.array([[True], [True], [False]])
    out, status = {}, []
    for eta in ETAS:
        h = Hyper(alpha_p=ALPHA_P, eta=eta, beta=1.0)
        t1 = _t_of_s(S_MODES, eta)
        ts_c = np.linspace(0.0, t1, NSAVE)
        ts_e = np.concatenate([ts_c[:-1], [400.0]])
        res = []
        for cos, ts in ((True, ts_c), (False, ts_e)):
            sol = solve_modes(_mode_rhs, y0, float(ts[-1]), args=(h, data, jnp.full((3, 1), cos), learned),
                              ts=jnp.asarray(ts), rtol=RTOL, atol=ATOL, max_steps=400_000)
            status.append(str(sol.status_names()))
            res.append(jax.tree.map(np.asarray, sol.states))
        out[eta] = (ts_c, res[0], ts_e, res[1])
    return out, status


def _shares(w):
    w2 = np.asarray(w) ** 2
    return w2 / np.sum(w2, axis=-1, keepdims=True)


def _generic_start():
    """The matrix level's generic start: W entries N(0, 1), Wp entries N(0, 0.3²), Wa = W (SimSiam), from the first
    key (0, 1, ...) whose C0 = W Wᵀ − WpᵀWp/α_p is positive definite with λ_min > 0.1 (then no direction can die,
    Eq. C7)."""
    for k in range(100):
        rng = np.random.default_rng(k)
        W0, Wp0 = rng.standard_normal((N_BAO, N_BAO)), 0.3 * rng.standard_normal((N_BAO, N_BAO))
        C0 = W0 @ W0.T - Wp0.T @ Wp0 / ALPHA_P
        if np.linalg.eigvalsh(C0).min() > 0.1:
            return W0, Wp0, C0, k
    raise RuntimeError("no start with C0 > 0.1 among 100 keys")


_SIMSIAM = {"cosine": Variant(ema=False, loss="cosine"), "euclidean": Variant(ema=False)}


def _matrix_rhs(y, hyper, data, cos):
    """The claim's and the control's matrix field in one compiled solve: `vector_field` of SimSiam (Wa = W) with the
    cosine loss where `cos`, with Eq. 1 (Lemma 1) elsewhere."""
    dc = vector_field(y, hyper, data, variant=_SIMSIAM["cosine"])
    de = vector_field(y, hyper, data, variant=_SIMSIAM["euclidean"])
    return jax.tree.map(lambda a, b: jnp.where(cos, a, b), dc, de)


@eqx.filter_jit
def _matrix_solve(y0, hyper, data, cos, ts):
    ys, status, _, _ = adaptive_solve(_matrix_rhs, y0, (hyper, data, cos), ts[0], ts[-1], ts, solver=diffrax.Tsit5(),
                                      rtol=RTOL_M, atol=ATOL_M, max_steps=400_000, max_norm=1e8)
    return ys, status


def _matrix(s0, eta, data, ts, loss):
    """The matrix flow (`simulate`'s solve, `byoldyn.stepper.adaptive_solve`, Tsit5) of SimSiam from `s0` (Wa = W)
    saved at `ts`: (W, Wp) with a leading save axis and whether the solve succeeded."""
    ys, status = _matrix_solve(s0, Hyper(alpha_p=ALPHA_P, eta=eta, beta=1.0), data, jnp.asarray(loss == "cosine"),
                               jnp.asarray(ts, jnp.float64))
    return np.asarray(ys.W), np.asarray(ys.Wp), int(status) == SUCCEEDED


@eqx.filter_jit
def _rk4_gram(y0, hyper, data, variant, dt, n_int: int, n_per: int):
    """The matrix flow by fixed RK4 steps (a cheaper compile than the adaptive solve; at dt = 0.02 over t = 2 its
    error, ~dt⁴ = 2e-7, is far below the distances measured against SGD): the Gram WᵀW at the end of every
    interval."""
    r = fixed_solve(lambda y: vector_field(y, hyper, data, variant=variant), y0, dt, (n_int, n_per), method="rk4")
    W = r.ys.W
    return jnp.einsum("tij,tik->tjk", W, W)


def _padded(n, N):
    """The n-dimensional isotropic problem inside N dimensions: X = diag(1_n, 0), X' = σ² X. A state whose entries
    outside the top-left n × n block are zero keeps them zero (no gradient and no sample reaches them), so the
    padded run is the n-dimensional one exactly, and every n shares one compiled program."""
    m = np.zeros(N)
    m[:n] = 1.0
    return np.diag(m), SIGMA2 * np.diag(m)


def _pad(A, N):
    out = np.zeros((N, N))
    out[: A.shape[0], : A.shape[1]] = A
    return jnp.asarray(out)


def _n_sweep(ns, N, seeds, dt, loss, seed, B=1024, T=2.0, nsave=5):
    """The mean-field flow (Lemma 1 for the Euclidean loss) against minibatch SGD on the exact loss (one view, BYOL,
    α_p = β = 1, η = 0, `from_flow`, ema_form "flow"), start `State.random(key n, scale 1/√n, Wa = W)`: the relative
    trajectory distance max_k ‖G_SGD(t_k) − G_flow(t_k)‖_F / ‖G_flow(t_k)‖_F, G = WᵀW, over the saves t_k = k T/5,
    one value per seed. Returns {n: array(seeds)}."""
    hyper = Hyper(alpha_p=1.0, eta=0.0, beta=1.0)
    sgd, steps = from_flow(hyper, dt), int(round(T / dt))
    setup = Setup(loss=loss, ema_form="flow", batch=B)
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    out = {}
    for n in ns:
        s = State.random(jax.random.PRNGKey(n), n, n, scale=1 / np.sqrt(n), target="copy", dtype=jnp.float64)
        s0 = State(_pad(np.asarray(s.W), N), _pad(np.asarray(s.Wp), N), _pad(np.asarray(s.Wa), N))
        X, Xp = _padded(n, N)
        G = np.asarray(_rk4_gram(s0, hyper, Data(jnp.asarray(X), jnp.asarray(Xp)), Variant(loss=loss),
                                 jnp.asarray(0.02), nsave, int(round(T / nsave / 0.02))))
        src = Source.additive(X, Xp)
        run = jax.vmap(lambda k: train(s0, sgd, src, k, steps, setup=setup, save_every=steps // nsave,  # noqa: B023
                                       observe=_gram))(keys)
        if not np.all(np.asarray(run.status) == 0):
            out[n] = np.full(seeds, np.nan)
            continue
        Gs = np.asarray(run.observed)[:, 1:]  # (seeds, saves, N, N)
        d = np.linalg.norm(Gs - G[None], axis=(-2, -1)) / np.linalg.norm(G, axis=(-2, -1))[None]
        out[n] = d.max(axis=1)
    return out


def _gram(t, state):
    """WᵀW (a module-level function: one compiled SGD program for every n)."""
    return state.W.T @ state.W


def _fmt_set(alive):
    return "{" + ", ".join(str(j) for j in np.flatnonzero(alive)) + "}"


def fig_cosine_loss(size: str = "full", seed: int = 0):
    """The cosine loss (docs/cosine_loss.md). (a) the mean-field flow against minibatch SGD on the exact cosine loss
    over n (a finding); (b) the mode level (Eqs. C2-C6) on anisotropic data at weight decays up to above every
    collapse threshold: the end point is Eq. C6's at every η, the Euclidean control loses the modes with η > η_c(j);
    (c) the matrix level from a generic start: weight decay only speeds the clock (Eq. C5) and the end point is
    Eq. C7's; (d) the mode level against the matrix level on diagonal states. `seed` draws the SGD seeds of (a)."""
    if not jax.config.jax_enable_x64:
        raise ValueError("fig_cosine_loss needs float64 (rtol 1e-11): jax.config.update('jax_enable_x64', True)")
    rows: list = []
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    (ax_a, ax_b), (ax_c, ax_d) = axes
    x, xp = np.asarray(X_MODES), np.asarray(XP_MODES)
    data_m = Data.diagonal(x, xp)
    kappa_j = (x + xp) / x
    eta_c = np.asarray(theory.eta_c(1.0, data_m))

    # (d) first: the mode field against the matrix field at 3 random diagonal states (one batch), three variants
    w, wp, wa = np.random.default_rng(7).standard_normal((3, 3, len(x)))
    h = Hyper(alpha_p=1.7, eta=0.13, beta=0.6, eta_p=0.07)
    diag = jax.vmap(jnp.diag)
    err_f, err_f_ctl = 0.0, np.inf
    for ema, sg in ((True, True), (False, True), (False, False)):
        T = wa if ema else w
        v = Variant(ema=ema, stop_grad=sg, loss="cosine")
        d = jax.vmap(lambda y: vector_field(y, h, data_m, variant=v))(State(diag(w), diag(wp), diag(T)))  # noqa: B023
        tau = None if ema else 1.0
        dm = cosine_mode_field(ModeState(w, wp, T), h, data_m, tau=tau, stop_grad=sg)
        for a, b in zip((d.W, d.Wp, d.Wa), dm):
            err_f = max(err_f, np.abs(np.asarray(a) - np.asarray(diag(b))).max())
        if sg:  # the control: Eq. 1's mode field (defined with stop-gradient) on the loss's part, dW
            a, de = np.asarray(d.W), mode_field(ModeState(w, wp, T), h, data_m, tau=tau)
            err_f_ctl = min(err_f_ctl, np.min(np.abs(a - np.asarray(diag(de.w))).max(axis=(1, 2))
                                              / np.abs(a).max(axis=(1, 2))))

    # the mode level's runs
    runs, st_modes = _mode_runs(data_m)
    P_A, S_A = (np.asarray(v) for v in theory.cosine_fixed_point(W0_A, P0_A, data_m, ALPHA_P))
    alive_B = np.array([True, True, True, False])
    P_B, S_B = (np.asarray(v) for v in theory.cosine_fixed_point(W0_B, P0_B, data_m, ALPHA_P, alive_B))
    err_end, sets_cos, err_ctl, sets_euc = 0.0, [], np.inf, []
    for eta in ETAS:
        ts_c, yc, ts_e, ye = runs[eta]
        tc, te = ts_c[-1], ts_e[-2]  # the cosine's end, and the Euclidean saved at the same time
        for k, (P, S) in enumerate(((P_A, S_A), (P_B, S_B))):
            p_end, s_end = yc.w_p[-1, k] * np.exp(eta * tc), yc.w[-1, k] ** 2 * np.exp(2 * eta * tc)
            err_end = max(err_end, np.abs(p_end - P).max() / np.abs(P).max(), np.abs(s_end - S).max() / S.max())
            if k == 0:
                sets_cos.append(_shares(yc.w[-1, 0]) > ALIVE)
                p_e, s_e = ye.w_p[-2, 0] * np.exp(eta * te), ye.w[-2, 0] ** 2 * np.exp(2 * eta * te)
                err_ctl = min(err_ctl, max(np.abs(p_e - P).max() / np.abs(P).max(), np.abs(s_e - S).max() / S.max()))
                sets_euc.append(ye.w[-1, 0] ** 2 > ALIVE)
    all_alive = all(np.all(s) for s in sets_cos)
    ok_modes = all(s == "succeeded" for s in st_modes)
    euc_pred = [eta < eta_c for eta in ETAS]  # A3's surviving sets (start A has c_j > 0: at η = 0 all survive)
    euc_as_a3 = all(np.array_equal(a, b) for a, b in zip(sets_euc, euc_pred))

    # panel (b): the shares at the end against η
    etas = np.asarray(ETAS)
    for j in range(len(x)):
        dx = 0.012 * (j - 1.5)  # side by side
        ax_b.axhline(S_A[j], color=f"C{j}", ls="--", lw=0.9)
        ax_b.semilogy(etas + dx, [runs[e][1].w[-1, 0, j] ** 2 * np.exp(2 * e * runs[e][0][-1]) for e in ETAS], "o",
                      color=f"C{j}", ms=7, label=f"mode {j}: x = {x[j]:g}, x' = {xp[j]:g}, η_c(j) = {eta_c[j]:.3f}")
        ax_b.semilogy(etas + dx, [max(runs[e][3].w[-1, 0, j] ** 2, 1e-30) for e in ETAS], "s", color=f"C{j}", ms=8,
                      mfc="none", mew=1.5)
        ax_b.axvline(eta_c[j], color=f"C{j}", lw=0.8, ls=":")
    ax_b.plot([], [], "ko", label="cosine loss: s_j e^{2ηt} at the end (t: s = 40)")
    ax_b.plot([], [], "k--", lw=0.9, label="Eq. C6: the same at every η")
    ax_b.plot([], [], "ks", mfc="none", label="control, Euclidean loss: s_j at t = 400 (below 1e-30: at 1e-30)")
    ax_b.plot([], [], "k:", lw=0.8, label="η_c(j) (dotted)")
    ax_b.set(xlabel="weight decay η (= η_p)", ylabel="s_j = w_j² at the end (cosine: rescaled)", ylim=(1e-32, 30),
             xticks=ETAS)
    ax_b.set_title("(b) mode level, SimSiam, X = diag(x), X' = diag(x'): the cosine loss keeps\n"
                   "every mode at every η; the Euclidean loss loses those with η > η_c(j)", fontsize=10)
    ax_b.legend(fontsize=7, loc="center right")
    rows.append(Check(
        "Cosine loss at the mode level (Eqs. C2-C6; Bao 2023): with X = diag" + str(X_MODES) + ", X' = diag"
        + str(XP_MODES) + ", SimSiam, η = η_p ∈ {" + ", ".join(f"{e:g}" for e in ETAS) + "} (above every η_c(j) = "
        + ", ".join(f"{e:.3f}" for e in eta_c) + " at 0.5), the rescaled end (p_j e^{ηt}, s_j e^{2ηt}) is Eq. C6's, "
        "the same at every η: every mode with c_j > 0 survives, p_j ∝ x_j/(x_j + x'_j); a mode in the collapsed "
        "branch's basin (start B) dies at every η",
        f"max relative error against Eq. C6 over η and starts A, B: {err_end:.1e}; surviving sets (start A) "
        + ", ".join(_fmt_set(s) for s in sets_cos) + ("" if ok_modes else "; a SOLVE FAILED"),
        f"≤ {TOL_END:g} (run to s = {S_MODES:g} on the η = 0 clock, Eq. C5); every mode at every η",
        ok_modes and err_end <= TOL_END and all_alive,
        "Euclidean loss (Eq. 1), same starts and η: error against Eq. C6 ≥ " + f"{err_ctl:.2f}; surviving sets "
        + ", ".join(_fmt_set(s) for s in sets_euc) + (" = A3's {j : η < η_c(j)}" if euc_as_a3 else " (A3 predicts "
        + ", ".join(_fmt_set(s) for s in euc_pred) + ")"),
        err_ctl <= TOL_END and all(np.all(s) for s in sets_euc)))

    # (c) the matrix level from a generic start, isotropic data: clock (Eq. C5) and end point (Eq. C7)
    W0, Wp0, C0, key_bao = _generic_start()
    n = N_BAO
    data_iso = Data(jnp.eye(n), SIGMA2 * jnp.eye(n))  # as full matrices: one compiled solve with (d)'s diagonal data
    mu = np.linalg.norm(Wp0) / np.sqrt(n)
    EW, EP = C0 + mu * mu * np.eye(n) / ALPHA_P, mu * np.eye(n)
    t1 = _t_of_s(S_MATRIX, ETA_BAO)
    ts = np.linspace(0.0, t1, NSAVE)
    s0 = State(jnp.asarray(W0), jnp.asarray(Wp0), jnp.asarray(W0))
    res = {}
    for loss in ("cosine", "euclidean"):
        Wt, Wpt, st1 = _matrix(s0, ETA_BAO, data_iso, ts, loss)
        W_0, Wp_0, st0 = _matrix(s0, 0.0, data_iso, clock(ts, ETA_BAO), loss)
        g = np.exp(ETA_BAO * ts)[:, None, None]
        U, V = Wt * g, Wpt * g
        scale = np.maximum(np.linalg.norm(W_0, axis=(1, 2)), np.linalg.norm(Wp_0, axis=(1, 2)))
        d_clock = np.maximum(np.linalg.norm(U - W_0, axis=(1, 2)), np.linalg.norm(V - Wp_0, axis=(1, 2))) / scale
        d_end = np.maximum(np.linalg.norm(np.einsum("tij,tkj->tik", U, U) - EW, axis=(1, 2)) / np.linalg.norm(EW),
                           np.linalg.norm(V - EP, axis=(1, 2)) / np.linalg.norm(EP))
        X, Xp = data_iso.matrices()
        sim = 1.0 - float(expected_cosine_loss(Wt[-1], Wpt[-1], Wt[-1], X, Xp))
        res[loss] = (d_clock, d_end, sim, st1 and st0, np.linalg.norm(Wt[-1]) / np.linalg.norm(W0))
    for loss, ls in (("cosine", "-"), ("euclidean", ":")):
        d_clock, d_end, *_ = res[loss]
        ax_c.semilogy(ts, np.maximum(d_clock, 1e-16), ls, color="C0", lw=2,
                      label=f"{loss}: rescaled state at η vs the η = 0 state at s(t) (Eq. C5)")
        ax_c.semilogy(ts, d_end, ls, color="C3", lw=2, label=f"{loss}: distance to Eq. C7's end point")
    for tol, lab in ((TOL_CLOCK, "clock tolerance"), (TOL_END, "end-point tolerance")):
        ax_c.axhline(tol, color="0.5", lw=0.8, ls="--")
        ax_c.text(0.02, tol * 1.5, lab, fontsize=7, color="0.4")
    ax_c.set(xlabel="t", ylabel="relative distance", ylim=(1e-16, 1e8))
    ax_c.set_title(f"(c) matrix level, n = {n}, isotropic σ² = {SIGMA2}, SimSiam, η = {ETA_BAO} = 3 η_c, generic "
                   f"start: with\nthe cosine loss weight decay only speeds the clock; s(t = {t1:.2f}) = {S_MATRIX:g}",
                   fontsize=10)
    ax_c.legend(fontsize=7, loc="upper left")
    dc, de, sim, ok_m, shrink = res["cosine"]
    dce, dee, sime, ok_e, shrink_e = res["euclidean"]
    kappa = 1.0 + SIGMA2
    rows.append(Check(
        f"Cosine loss at the matrix level (Bao 2023; Eqs. C5, C7): n = {n}, σ² = {SIGMA2}, SimSiam, learned Wp, "
        f"η = η_p = {ETA_BAO} = 3 η_c, generic start (W ~ N(0, 1), Wp ~ N(0, 0.3²) entries, key {key_bao}, "
        "C0 = WWᵀ − WpᵀWp/α_p positive definite): the rescaled flow (W, Wp) e^{ηt} is the η = 0 flow at s = "
        "(e^{2ηt} − 1)/(2η), and it ends at e^{2ηt} WWᵀ = C0 + μ² I/α_p, e^{ηt} Wp = μ I, μ = ‖Wp(0)‖_F/√n "
        "(1 − J_cos = 1/κ)",
        f"clock: max relative distance {dc.max():.1e}; end point: {de[-1]:.1e}; 1 − J_cos = {sim:.8f} (1/κ = "
        f"{1 / kappa:.8f}); ‖W(t)‖/‖W(0)‖ = {shrink:.4f} = e^(−ηt) = {np.exp(-ETA_BAO * t1):.4f}"
        + ("" if ok_m else "; a SOLVE FAILED"),
        f"clock ≤ {TOL_CLOCK:g}, end point ≤ {TOL_END:g} (solver rtol {RTOL_M:g}, s = {S_MATRIX:g})",
        ok_m and dc.max() <= TOL_CLOCK and de[-1] <= TOL_END and abs(sim - 1 / kappa) <= TOL_END,
        f"Euclidean loss (Lemma 1), same start and η: clock {dce.max():.2f}, end point {dee[-1]:.2f}, 1 − J_cos = "
        f"{sime:.4f}, ‖W‖/‖W(0)‖ = {shrink_e:.4f}",
        ok_e and dce.max() <= TOL_CLOCK and dee[-1] <= TOL_END and abs(sime - 1 / kappa) <= TOL_END))

    # (d) the mode level against the matrix level along a trajectory: start B, Data.diagonal, η = 0.5
    eta_d = ETAS[-1]
    ts_d, yB = runs[eta_d][0], runs[eta_d][1]
    sB = State(jnp.diag(jnp.asarray(W0_B)), jnp.diag(jnp.asarray(P0_B)), jnp.diag(jnp.asarray(W0_B)))
    Wd, Wpd, st_d = _matrix(sB, eta_d, data_m, ts_d, "cosine")
    wm, pm = np.diagonal(Wd, axis1=1, axis2=2), np.diagonal(Wpd, axis1=1, axis2=2)
    off = max(np.abs(Wd - wm[:, :, None] * np.eye(len(x))).max(), np.abs(Wpd - pm[:, :, None] * np.eye(len(x))).max())
    sz = np.maximum(np.abs(yB.w[:, 1]).max(axis=1), np.abs(yB.w_p[:, 1]).max(axis=1))
    err_t = max(np.max(np.abs(wm - yB.w[:, 1]).max(axis=1) / sz), np.max(np.abs(pm - yB.w_p[:, 1]).max(axis=1) / sz),
                off) if st_d else np.inf
    rows.append(Check(
        "Cosine loss, mode level = matrix level (Eqs. C1-C3): W, Wp, Wa diagonal in the data's eigenbasis "
        "(X = diag(x), X' = diag(x')) stay diagonal and each mode follows cosine_mode_field; BYOL, SimSiam and no "
        "stop-gradient at 3 random diagonal states, and a trajectory (start B, SimSiam, η = 0.5)",
        f"vector field: max |matrix − mode| = {err_f:.1e}; trajectory: max relative difference {err_t:.1e} "
        f"(off-diagonal entries ≤ {off:.0e})",
        f"field ≤ {TOL_FIELD:g} (float64 rounding); trajectory ≤ {TOL_TRAJ:g} (two solves at rtol ≤ 1e-10)",
        err_f <= TOL_FIELD and err_t <= TOL_TRAJ,
        f"Eq. 1's mode field (mode_field) against the matrix cosine field, dW: relative difference ≥ {err_f_ctl:.2f}",
        err_f_ctl <= TOL_FIELD))
    for k, (eta, ls) in enumerate(((0.0, ":"), (eta_d, "-"))):
        ts_k, y = runs[eta][0], runs[eta][1]
        sh = _shares(y.w[:, 1])
        for j in range(len(x)):
            ax_d.semilogy(clock(ts_k, eta), sh[:, j], ls, color=f"C{j}", lw=2 if k else 3,
                          alpha=1 if k else 0.45, label=f"mode {j}, 1/κ_j = {1 / kappa_j[j]:.3f}" if k else None)
    shm = _shares(wm)
    for j in range(len(x)):
        ax_d.semilogy(clock(ts_d, eta_d)[::4], shm[::4, j], "o", color=f"C{j}", mfc="none", ms=7)
    idx = runs[eta_d][1]
    shi = _shares(idx.w[-1, 2])
    ax_d.plot([], [], "k:", lw=3, alpha=0.45, label="η = 0 (thick, faint)")
    ax_d.plot([], [], "k-", label=f"η = {eta_d} against s (mode level)")
    ax_d.plot([], [], "ko", mfc="none", label=f"η = {eta_d}, matrix level, diagonal start")
    ax_d.set(xlabel="the η = 0 clock s = (e^{2ηt} − 1)/(2η)", ylabel="share w_j² / Σ_k w_k²", ylim=(1e-10, 3))
    ax_d.set_title("(d) start B (mode 3: c_3 < 0, p_3(0) < 0): it dies at every η, on the same clock;\n"
                   "mode level (lines) = matrix level (circles)", fontsize=10)
    ax_d.legend(fontsize=7, loc="lower left")

    # (a) the mean-field flow against SGD on the exact cosine loss, over n
    full = size == "full"
    ns, N, seeds = ((8, 16, 32, 64), 64, 6) if full else ((4, 8, 16), 16, 3)
    d_cos = _n_sweep(ns, N, seeds, 0.02, "cosine", seed)
    ms = {nn: mean_se(d_cos[nn]) for nn in ns}
    d_euc = _n_sweep(ns, N, seeds, 0.02, "euclidean", seed) if full else None
    d_half = _n_sweep(ns, N, seeds, 0.01, "cosine", seed) if full else None
    slope = float(np.polyfit(np.log(ns), np.log([ms[nn][0] for nn in ns]), 1)[0])
    ax_a.errorbar(ns, [ms[nn][0] for nn in ns], yerr=[3 * ms[nn][1] for nn in ns], fmt="o-", color="C0", capsize=3,
                  label=f"cosine: mean-field flow vs SGD on the exact loss (dt = 0.02), ± 3 SE; slope {slope:.2f}")
    if full:
        me = {nn: mean_se(d_euc[nn]) for nn in ns}
        mh = {nn: mean_se(d_half[nn]) for nn in ns}
        slope_h = float(np.polyfit(np.log(ns), np.log([mh[nn][0] for nn in ns]), 1)[0])
        ax_a.errorbar(ns, [me[nn][0] for nn in ns], yerr=[3 * me[nn][1] for nn in ns], fmt="s--", color="0.5",
                      capsize=3, label="Euclidean: Lemma 1 vs SGD (the SGD's own error, dt = 0.02)")
        ax_a.errorbar(ns, [mh[nn][0] for nn in ns], yerr=[3 * mh[nn][1] for nn in ns], fmt="^-", color="C1",
                      capsize=3, label=f"cosine, SGD at dt = 0.01 (200 steps); slope {slope_h:.2f}")
    ax_a.set_xscale("log", base=2)
    ax_a.set_yscale("log")
    ax_a.set(xlabel="n (= n1 = n2)", ylabel="max over t ≤ 2 of ‖G_SGD − G_flow‖_F / ‖G_flow‖_F, G = WᵀW")
    ax_a.set_title(f"(a) cosine loss: the mean-field flow against minibatch SGD on the exact loss\n"
                   f"(BYOL, σ² = {SIGMA2}, η = 0, batch 1024, {seeds} seeds, one view)", fontsize=10)
    ax_a.set_ylim(5e-3, 0.12)
    ax_a.legend(fontsize=7, loc="upper right")
    meas = "; ".join(f"n = {nn}: {ms[nn][0]:.4f} ± {ms[nn][1]:.4f}" for nn in ns)
    if full:
        meas += "; Euclidean floor " + ", ".join(f"{me[nn][0]:.4f}" for nn in ns) + "; cosine with the SGD at dt = " \
            "0.01: " + ", ".join(f"n = {nn}: {mh[nn][0]:.4f} ± {mh[nn][1]:.4f}" for nn in ns) + f" (slope {slope_h:.2f})"
    lo, hi = ms[ns[0]], ms[ns[-1]]
    falls = hi[0] + Z * hi[1] < lo[0] - Z * lo[1]
    expl = (f"the mean-field error is a few percent at every n; from n = {ns[0]} to {ns[-1]} it "
            + ("falls" if falls else "does not fall beyond the error bars") + f", as n^{slope:.2f} (least squares); "
            "the delta method gives the norms' concentration alone a bias O(1/r), r ≤ n the features' effective "
            "rank, a faster fall than measured")
    if full:
        big = ns[-1]
        dh, dl, dhh = diff_ci(d_cos[big], d_half[big])
        expl += (f". The Euclidean comparison (the SGD's own noise and step error) stays at {me[big][0]:.3f}; halving "
                 f"the SGD step at n = {big} lowers the cosine distance by {dh:.4f} [{dl:.4f}, {dhh:.4f}] (3 SE)"
                 + (f" and steepens the fall to n^{slope_h:.2f}: part of what remains at large n is the SGD's step "
                    "error on the cosine loss (its gradient scales as 1/‖W‖), not the mean-field approximation"
                    if dl > 0 else
                    ": what remains is not the SGD's step error"))
    rows.append(Finding(
        "Cosine loss, mean-field flow (docs/cosine_loss.md) against minibatch SGD on the exact cosine loss: relative "
        f"trajectory distance of WᵀW to t = 2 over n (BYOL, isotropic σ² = {SIGMA2}, η = 0, batch 1024, dt = 0.02, "
        f"{seeds} seeds; mean ± SE)",
        meas + f"; least-squares slope of log distance on log n: {slope:.2f}",
        "Halvagal et al. 2023 / Bao 2023: the norms concentrate as n → ∞ (the mean-field form exact in the limit)",
        expl))

    # the finding on Bao's statement: what 'no collapse' means in the flow
    sh_dead = [_shares(runs[e][1].w[-1, 1])[3] for e in ETAS]
    rows.append(Finding(
        "Bao 2023 (arXiv 2309.16109, abstract): with feature normalisation (the cosine loss) excessively strong "
        "weight decay no longer collapses the dynamics; a stable equilibrium emerges dynamically even where only "
        "collapsed solutions exist at the initial parameters",
        f"the mean-field flow: ‖W(t)‖ = ‖W(0)‖ e^(−ηt) exactly at every η > 0 (measured {shrink:.4f} vs "
        f"{np.exp(-ETA_BAO * t1):.4f}): the weights do go to 0; what survives is the rescaled state, the η = 0 flow "
        "on the clock s = (e^{2ηt} − 1)/(2η) (Eq. C5). Per-mode collapse remains, set by the start, not by η: "
        "start B's mode 3 ends with share " + ", ".join(f"{v:.0e}" for v in sh_dead) + " at η = "
        + ", ".join(f"{e:g}" for e in ETAS) + f"; with Wp = I the features concentrate on the modes with the "
        f"largest x_j/(x_j + x'_j) (shares at η = {eta_d}: " + ", ".join(f"{v:.3f}" for v in shi) + ")",
        "collapse prevented whatever the weight decay (strength of regularisation)",
        "agrees on the normalised state, which reaches its equilibrium because the effective weight decay relative "
        "to the scale-free gradient, η e^{−2ηt}, falls below every threshold (the 'dynamically emerging' "
        "equilibrium); it does not prevent dimensional collapse: the surviving set is the η = 0 flow's, fixed by "
        "the start (c_j = w_j² − p_j²/α_p > 0 suffices, Eq. C4), and with Wp = I the cosine loss keeps only the "
        "best signal-to-augmentation directions; in the flow nothing keeps the norm (discrete SGD does, at O(lr))"))

    fig.suptitle("The cosine loss: mean-field flow, mode level (Eqs. C1-C7) and weight decay above η_c (Bao 2023)",
                 fontsize=11)
    note(fig, f"Chosen: α_p = {ALPHA_P:g}, η_p = η, SimSiam (τ = 1) in (b-d), solves rtol {RTOL:g} (modes) and "
              f"{RTOL_M:g} (matrix); (b) starts A w = {W0_A}, p = {P0_A}; B w = {W0_B}, p = {P0_B}; (a) the flow by "
              "RK4 at dt = 0.02, SGD from_flow, ema_form 'flow', each n padded into one N-dimensional program.")
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    return fig, rows
