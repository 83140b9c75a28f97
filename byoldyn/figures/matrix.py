"""Figures from full-matrix Lemma 1 runs: Fig. 7 (Assumption 1), Theorem 2, Theorem 3."""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np

from .. import observables as ob
from ..batch import simulate_batch
from ..model import Data, Hyper, State
from .common import Check, note

__all__ = ["fig7_assumption1", "fig_theorem2", "fig_theorem3_full"]


def _states(n_members: int, n1: int, n2: int, scale: float, seed: int = 0) -> State:
    keys = jax.random.split(jax.random.PRNGKey(seed), n_members)
    return jax.vmap(lambda k: State.random(k, n1, n2, scale=scale))(keys)


def fig7_assumption1(size: str = "full"):
    """Fig. 7: Assumption 1 (Wa ≈ τ W) in full-matrix Lemma 1 runs (THEORY.md sections 5, 9).

    X = I, X' = σ²I with σ = 0.03, Wa(0) = 0, 10 seeds per curve; the normalized correlation
    ⟨Wa, W⟩/(‖Wa‖‖W‖) over time for several EMA momenta γ_a and η = 0, 0.01, 0.1.
    """
    seeds, n, t1 = (10, 16, 200.0) if size == "full" else (3, 4, 200.0)
    lr = 0.01                                  # discrete learning rate: beta = (1 - gamma_a) / lr
    gammas = np.array([0.9, 0.996, 0.9996])
    etas = np.array([0.0, 0.01, 0.1])
    scale, sigma2 = 0.1, 0.03 ** 2
    E, G, S = np.meshgrid(etas, (1 - gammas) / lr, np.arange(seeds), indexing="ij")
    hyper = Hyper(alpha_p=1.0, eta=E.ravel(), beta=G.ravel())
    states = _states(seeds, n, n, scale)
    states = jax.tree.map(lambda a: a[S.ravel()], states)
    ts = np.linspace(0.0, t1, 201)
    sol = simulate_batch(states, hyper, Data.isotropic(n, sigma2), t1, ts=ts, rtol=1e-8, atol=1e-14,
                         observe=lambda t, s: ob.wa_correlation(s.W, s.Wa))
    corr = np.asarray(sol.observed).reshape(len(etas), len(gammas), seeds, len(ts))
    ok = np.asarray(sol.status).reshape(corr.shape[:3]) == 0

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for i, (ax, eta) in enumerate(zip(axes, etas)):
        for j, g in enumerate(gammas):
            m, sd = corr[i, j].mean(0), corr[i, j].std(0)
            ax.plot(ts, m, label=f"γ_a = {g} (β = {(1 - g) / lr:g})")
            ax.fill_between(ts, m - sd, m + sd, alpha=0.25)
        ax.set_title(f"η = {eta:g}")
        ax.set_xlabel("t")
        ax.axhline(0.9, color="k", lw=0.6, ls=":")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("⟨Wa, W⟩ / (‖Wa‖ ‖W‖)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Fig. 7: Assumption 1 holds in full-matrix BYOL (Lemma 1), Wa(0) = 0, mean ± std over seeds")
    note(fig, f"X = I, X' = σ²I, σ = 0.03, α_p = 1, {seeds} seeds. Chosen (UNCONFIRMED): n1 = n2 = {n}, "
               f"W, Wp ~ N(0, {scale:g}²/n), lr = {lr} for γ_a -> β, horizon t = {t1:g}.")
    fig.tight_layout(rect=(0, 0.04, 1, 1))

    late = ts >= 0.25 * t1
    worst = float(np.min(corr[..., late].mean(axis=2)))
    checks = [Check("Fig. 7 / Assumption 1: corr(Wa, W) after the first quarter of training (min over γ_a, η; mean over seeds)",
                    f"{worst:.3f} ({int(ok.sum())}/{ok.size} runs succeeded)", "≈ 0.9 or more", worst >= 0.85 and ok.all())]
    return fig, checks


def fig_theorem2(size: str = "full"):
    """Theorem 2 (Eq. 6): without stop-gradient, or without a predictor, W collapses (THEORY.md sections 2, 4).

    Lemma 1 runs from the same starts: BYOL and SimSiam (both survive), SimSiam without
    stop-gradient (‖W(t)‖ <= e^{−λ0 t}‖W(0)‖ with λ0 = σ² + η <= λ_min(H)), and no predictor
    (Wp = I) with and without EMA.
    """
    seeds, n, t1 = (8, 8, 60.0) if size == "full" else (2, 3, 60.0)
    sigma2, eta, beta, scale = 0.5, 0.01, 0.5, 1.0
    hyper = Hyper(alpha_p=1.0, eta=eta, beta=beta)
    data = Data.isotropic(n, sigma2)
    states = _states(seeds, n, n, scale, seed=1)
    ts = np.linspace(0.0, t1, 241)
    variants = {
        "BYOL (EMA, stop-grad, learned Wp)": dict(),
        "SimSiam (stop-grad, learned Wp)": dict(ema=False),
        "SimSiam without stop-gradient": dict(ema=False, stop_grad=False),
        "no predictor (Wp = I), EMA": dict(predictor="identity"),
        "no predictor (Wp = I), no EMA": dict(ema=False, predictor="identity"),
    }
    norms = {}
    for name, kw in variants.items():
        sol = simulate_batch(states, hyper, data, t1, ts=ts, observe=lambda t, s: ob.norm_W(s.W), rtol=1e-10,
                             atol=1e-16, **kw)
        norms[name] = np.asarray(sol.observed) / np.asarray(sol.observed)[:, :1]

    lam0 = sigma2 + eta
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in norms.items():
        line, = ax.semilogy(ts, np.median(r, 0), label=name)
        ax.fill_between(ts, r.min(0), r.max(0), color=line.get_color(), alpha=0.2)
    ax.semilogy(ts, np.exp(-lam0 * ts), "k--", lw=1, label=f"Theorem 2 bound e^(−λ0 t), λ0 = σ² + η = {lam0:g}")
    ax.set_ylim(1e-8, 1e2)
    ax.set_xlabel("t")
    ax.set_ylabel("‖W(t)‖ / ‖W(0)‖ (median, range over seeds)")
    ax.set_title("Theorem 2: no stop-gradient or no predictor → collapse")
    ax.legend(fontsize=7, loc="lower left")
    note(fig, f"Lemma 1, X = I, X' = σ²I, σ² = {sigma2}, α_p = 1, η = {eta}, β = {beta}; chosen: n1 = n2 = {n}, "
               f"W, Wp ~ N(0, {scale:g}²/n), Wa(0) = 0, {seeds} seeds.")
    fig.tight_layout(rect=(0, 0.04, 1, 1))

    nsg = norms["SimSiam without stop-gradient"]
    ratio = float(np.max(nsg[:, 1:] / np.exp(-lam0 * ts[1:])))
    kept = min(float(np.min(norms[k][:, -1])) for k in list(variants)[:2])
    nopred = max(float(np.max(norms[k][:, -1])) for k in list(variants)[3:])
    checks = [
        Check("Theorem 2: no stop-gradient, max_{t>0} ‖W(t)‖ / (e^{−λ0 t}‖W(0)‖), λ0 = λ_min(X') + η",
              f"{ratio:.3f}; ‖W(t1)‖/‖W(0)‖ = {float(np.max(nsg[:, -1])):.1e}", "<= 1 (Lemma 2)", ratio <= 1 + 1e-6),
        Check("Section 2: no predictor (Wp = I), with or without EMA, ‖W(t1)‖/‖W(0)‖ (max over seeds)",
              f"{nopred:.1e}", "→ 0 (collapse)", nopred < 1e-2),
        Check("Section 2: with stop-gradient and a learned predictor (BYOL, SimSiam), ‖W(t1)‖/‖W(0)‖ (min over seeds)",
              f"{kept:.2f}", "does not collapse (> 0)", kept > 0.1),
    ]
    return fig, checks


def fig_theorem3_full(size: str = "full"):
    """Theorem 3 in full-matrix Lemma 1 runs: Wp's eigenvectors align with F's (THEORY.md sections 6, 14).

    Learned, non-symmetric predictor with EMA (no Assumption 1-3 imposed): per-mode
    alignment cos(Wp u_j, u_j), the normalized commutator ‖[F, Wp]‖/(‖F‖‖Wp‖), the asymmetry of
    Wp and the Theorem 1 residual over time.
    """
    seeds, n, t1 = (6, 16, 300.0) if size == "full" else (2, 4, 300.0)
    sigma2, eta, beta, alpha_p, scale = 0.5, 0.01, 0.5, 1.0, 0.5
    hyper = Hyper(alpha_p=alpha_p, eta=eta, beta=beta)
    data = Data.isotropic(n, sigma2)
    states = _states(seeds, n, n, scale, seed=2)
    ts = np.unique(np.r_[np.geomspace(1e-2, t1, 200), np.linspace(0.0, t1, 151)])  # log-spaced early, for panel 1

    def observe(t, s):
        F_ = ob.F(s.W, data)
        sj, cos = ob.eigen_alignment(F_, s.Wp)
        return dict(s=sj, cos=cos, comm=ob.commutator_normalized(F_, s.Wp), asym=ob.asymmetry(s.Wp),
                    W=ob.norm_W(s.W), WWt=s.W @ s.W.T, WptWp=s.Wp.T @ s.Wp)

    sol = simulate_batch(states, hyper, data, t1, ts=ts, observe=observe, rtol=1e-10, atol=1e-12)
    o = {k: np.asarray(v) for k, v in sol.observed.items()}
    C = o["WWt"][:, :1] - o["WptWp"][:, :1] / alpha_p
    decay = np.exp(-2 * eta * ts)[None, :, None, None]
    resid = np.linalg.norm(o["WWt"] - o["WptWp"] / alpha_p - decay * C, axis=(-2, -1)) / np.linalg.norm(
        o["WWt"], axis=(-2, -1))

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    ax = axes[0]
    k = min(4, n)
    for j in range(k):
        ax.semilogx(ts[1:], o["cos"][0, 1:, j], label=f"mode {j + 1}")
    ax.set_title("cos(Wp u_j, u_j), seed 0, top modes of F")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.semilogy(ts, o["s"][0, :, :k])
    ax.set_title("eigenvalues s_j of F (seed 0)")
    axes[2].semilogy(ts, o["comm"].T, color="C0", alpha=0.6)
    axes[2].set_title("‖[F, Wp]‖ / (‖F‖ ‖Wp‖), all seeds")
    axes[3].plot(ts, o["asym"].T, color="C1", alpha=0.6)
    axes[3].set_title("‖Wp − Wpᵀ‖ / ‖Wp‖, all seeds")
    for ax in axes:
        ax.set_xlabel("t")
    fig.suptitle("Theorem 3 in full Lemma 1 runs: eigenspace alignment of Wp with F (non-symmetric Wp, EMA)")
    note(fig, f"Lemma 1, X = I, X' = σ²I; chosen: σ² = {sigma2}, α_p = {alpha_p}, η = {eta}, β = {beta}, "
               f"n1 = n2 = {n}, W, Wp ~ N(0, {scale}²/n), Wa(0) = 0, {seeds} seeds.")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))

    alive = o["s"][:, -1] > 1e-3
    cos_alive = o["cos"][:, -1][alive]
    min_cos = float(np.min(cos_alive)) if cos_alive.size else float("nan")
    comm0, comm1 = float(np.median(o["comm"][:, 0])), float(np.max(o["comm"][:, -1]))
    r = float(np.max(resid))
    checks = [
        Check("Theorem 3 (full Lemma 1 runs): cos(Wp u_j, u_j) at t1 over surviving modes (s_j > 1e-3), min over seeds",
              f"{min_cos:.6f} ({int(alive.sum())} modes)", "→ 1", min_cos > 0.999),
        Check("Theorem 3 (full Lemma 1 runs): normalized commutator, t = 0 (median) → t1 (max)",
              f"{comm0:.2f} → {comm1:.1e}", "→ 0 (at least 100x smaller)", comm1 < 1e-2 * comm0),
        Check("Theorem 1 (Eq. 5): max relative residual ‖WWᵀ − WpᵀWp/α_p − e^{−2ηt}C‖/‖WWᵀ‖ along the runs",
              f"{r:.1e}", "0 (solver tolerance 1e-10)", r < 1e-7),
    ]
    return fig, checks
