"""Figures from full-matrix Lemma 1 runs: Fig. 7 (Assumption 1), Theorem 2, Theorem 3."""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import expm

from .. import observables as ob
from .. import theory
from ..batch import simulate_batch
from ..model import Data, Hyper, State
from .common import Check, Z, note

__all__ = ["fig7_assumption1", "fig_theorem2", "fig_theorem3_full"]


def _states(n_members: int, n1: int, n2: int, scale: float, seed: int = 0) -> State:
    keys = jax.random.split(jax.random.PRNGKey(seed), n_members)
    return jax.vmap(lambda k: State.random(k, n1, n2, scale=scale))(keys)


def fig7_assumption1(size: str = "full"):
    """Fig. 7: Assumption 1 (Wa ≈ τ W) in full-matrix Lemma 1 runs (THEORY.md sections 5, 9).

    X = I, X' = σ²I with σ = 0.03, Wa(0) = 0, 10 seeds per curve; the normalized correlation
    ⟨Wa, W⟩/(‖Wa‖‖W‖) over time for several EMA momenta γ_a and η = 0, 0.01, 0.1.
    """
    seeds, n, t1 = (10, 16, 200.0) if size == "full" else (6, 4, 200.0)
    lr = 0.01                                  # discrete learning rate: beta = (1 - gamma_a) / lr
    gammas = np.array([0.9, 0.996, 0.9996])
    etas = np.array([0.0, 0.01, 0.1])
    scale, sigma2 = 0.1, 0.03 ** 2
    E, G, S = np.meshgrid(etas, (1 - gammas) / lr, np.arange(seeds), indexing="ij")
    hyper = Hyper(alpha_p=1.0, eta=E.ravel(), beta=G.ravel())
    base = _states(seeds, n, n, scale)
    states = jax.tree.map(lambda a: a[S.ravel()], base)
    ts = np.linspace(0.0, t1, 201)
    data = Data.isotropic(n, sigma2)
    observe = lambda t, s: ob.wa_correlation(s.W, s.Wa)  # noqa: E731
    sol = simulate_batch(states, hyper, data, t1, ts=ts, rtol=1e-8, atol=1e-14, observe=observe)
    corr = np.asarray(sol.observed).reshape(len(etas), len(gammas), seeds, len(ts))
    ok = np.asarray(sol.status).reshape(corr.shape[:3]) == 0
    # the control runs (see the criterion below): no EMA tracking, β = 0, Wa frozen at W(0); same seeds and η
    E0, S0 = np.meshgrid(etas, np.arange(seeds), indexing="ij")
    frozen = jax.tree.map(lambda a: a[S0.ravel()], State(base.W, base.Wp, base.W))
    sol0 = simulate_batch(frozen, Hyper(alpha_p=1.0, eta=E0.ravel(), beta=0.0), data, t1, ts=ts, rtol=1e-8,
                          atol=1e-14, observe=observe)
    corr0 = np.asarray(sol0.observed).reshape(len(etas), seeds, len(ts))
    ok0 = np.asarray(sol0.status) == 0

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for i, (ax, eta) in enumerate(zip(axes, etas)):
        for j, g in enumerate(gammas):
            m, sd = corr[i, j].mean(0), corr[i, j].std(0)
            ax.plot(ts, m, label=f"γ_a = {g} (β = {(1 - g) / lr:g})")
            ax.fill_between(ts, m - sd, m + sd, alpha=0.25)
        ax.plot(ts, corr0[i].mean(0), color="0.4", ls="--", label="control: β = 0, Wa frozen at W(0)")
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

    # Criterion: the interval mean − Z·SE over seeds of the late correlation must clear 0.85 in every (γ_a, η)
    # setting. 0.85 is not derived: it is a reading of the paper's Fig. 7, whose curves sit at 0.9 or above after
    # the first quarter (THEORY.md 5, A1), read to ±0.05.
    # Control: EMA tracking removed, β = 0 with Wa frozen at W(0) (the same seeds and η; the most favourable
    # frozen start: the correlation is 1 at t = 0 and falls only as W moves away from its start). Wa(0) = 0 as in
    # the claim runs would give Wa ≡ 0, a correlation of 0 by convention. The same criterion must fail there
    # (measured: means 0.69 ... 0.73 at size small, 0.73 ... 0.75 at full).
    late = ts >= 0.25 * t1
    per_seed = corr[..., late].mean(-1)                      # (eta, gamma, seed)
    per_seed0 = corr0[..., late].mean(-1)                    # (eta, seed)

    def low(c):  # min over settings of mean − Z·SE over seeds; min and max of the means
        m, se = c.mean(-1), c.std(-1, ddof=1) / np.sqrt(c.shape[-1])
        return float(np.min(m - Z * se)), float(np.min(m)), float(np.max(m))

    lo, mn, _ = low(per_seed)
    lo_c, mn_c, mx_c = low(per_seed0)
    checks = [Check("Fig. 7 / Assumption 1: corr(Wa, W) after the first quarter of training (worst (γ_a, η) setting; "
                    f"mean − {Z:g} SE over {seeds} seeds)",
                    f"{lo:.3f} (mean {mn:.3f}; {int(ok.sum())}/{ok.size} runs succeeded)",
                    "≥ 0.85 (a reading of the paper's Fig. 7: ≈ 0.9 or more, to ±0.05; not derived)",
                    bool(lo >= 0.85 and ok.all()),
                    f"EMA tracking removed (β = 0, Wa frozen at W(0); η = {', '.join(f'{e:g}' for e in etas)}): "
                    f"{lo_c:.3f} (means {mn_c:.3f} ... {mx_c:.3f}; {int(ok0.sum())}/{ok0.size} runs succeeded)",
                    not (lo_c < 0.85 and ok0.all()))]  # a failed control run is no disagreement
    return fig, checks


def fig_theorem2(size: str = "full"):
    """Theorem 2 (Eq. 6): without stop-gradient, or without a predictor, W collapses (THEORY.md sections 2, 4).

    Lemma 1 runs from the same starts: BYOL and SimSiam (both survive), SimSiam without
    stop-gradient (‖W(t)‖ <= e^{−λ0 t}‖W(0)‖ with λ0 = λ_min(X') + η <= λ_min(H)), also with a
    non-isotropic X and X', and no predictor (Wp = I) with and without EMA (an exact linear solution).
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
    norm = lambda t, s: ob.norm_W(s.W)  # noqa: E731 - one function, so runs of one variant share a compiled program
    run = lambda d, h, **kw: simulate_batch(states, h, d, t1, ts=ts, observe=norm,  # noqa: E731
                                            rtol=1e-10, atol=1e-16, **kw)
    norms, absn = {}, {}
    for name, kw in variants.items():
        o = np.asarray(run(data, hyper, **kw).observed)
        norms[name], absn[name] = o / o[:, :1], o
    # Theorem 2 with non-isotropic X and X' (the proof needs only X, X' PSD: λ_min(H) >= λ_min(X') + η);
    # control: a singular X' at η = 0, so λ0 = 0 and the null direction of X' need not decay.
    Xd = np.linspace(0.5, 1.5, n)
    Xpd = np.linspace(0.2, 0.8, n)
    nsg = dict(ema=False, stop_grad=False)
    gen = np.asarray(run(Data(np.diag(Xd), np.diag(Xpd)), hyper, **nsg).observed)
    sing = np.asarray(run(Data(np.diag(Xd), np.diag(np.r_[0.0, Xpd[1:]])), Hyper(alpha_p=1.0, eta=0.0), **nsg).observed)
    gen, sing = gen / gen[:, :1], sing / sing[:, :1]

    lam0 = sigma2 + eta
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in list(norms.items()) + [("no stop-gradient, non-isotropic X, X'", gen),
                                          ("no stop-gradient, singular X', η = 0 (control)", sing)]:
        line, = ax.semilogy(ts, np.median(r, 0), label=name)
        ax.fill_between(ts, r.min(0), r.max(0), color=line.get_color(), alpha=0.2)
    ax.semilogy(ts, np.exp(-lam0 * ts), "k--", lw=1, label=f"Theorem 2 bound e^(−λ0 t), λ0 = σ² + η = {lam0:g}")
    ax.set_ylim(1e-8, 1e2)
    ax.set_xlabel("t")
    ax.set_ylabel("‖W(t)‖ / ‖W(0)‖ (median, range over seeds)")
    ax.set_title("Theorem 2: no stop-gradient or no predictor → collapse")
    ax.legend(fontsize=6, loc="lower left")
    note(fig, f"Lemma 1, X = I, X' = σ²I, σ² = {sigma2}, α_p = 1, η = {eta}, β = {beta}; chosen: n1 = n2 = {n}, "
               f"W, Wp ~ N(0, {scale:g}²/n), Wa(0) = 0, {seeds} seeds. Non-isotropic: X = diag(0.5 ... 1.5), "
               "X' = diag(0.2 ... 0.8); control X'_11 = 0, η = 0.")
    fig.tight_layout(rect=(0, 0.04, 1, 1))

    # Criterion: the bound to the solver's accuracy (rtol 1e-10; 1e-6 is 10^4 x rtol) and collapse,
    # ‖W(t1)‖/‖W(0)‖ < 1e-3, which the bound implies a priori: e^{−λ0 t1} <= e^{−0.21·60} = 3e-6.
    def bound(r, l0):
        return float(np.max(r[:, 1:] / np.exp(-l0 * ts[1:]))), float(np.max(r[:, -1]))

    thm2 = lambda b: bool(b[0] <= 1 + 1e-6 and b[1] < 1e-3)  # noqa: E731
    iso = bound(norms["SimSiam without stop-gradient"], lam0)
    iso_c = bound(norms["SimSiam (stop-grad, learned Wp)"], lam0)
    l0g = float(Xpd.min()) + eta
    assert np.exp(-l0g * t1) < 1e-3 / 100
    gb, sb = bound(gen, l0g), bound(sing, 0.0)
    # No predictor, Wp = I: Eq. 3 is linear, Ẇ = −(1 + σ² + η)W + Wa, Ẇa = β(W − Wa) (Wa = W without EMA),
    # so ‖W(t)‖/‖W(0)‖ = [expm(tM)]_00 exactly (Wa(0) = 0). Criterion: the runs follow it to 1e-8 (100 x rtol)
    # and it falls below 1e-3 by t1. Control: the learned-predictor runs (BYOL, SimSiam) against the same solution.
    k = 1.0 + sigma2 + eta
    exact = {"no predictor (Wp = I), EMA": np.array([expm(t * np.array([[-k, 1.0], [beta, -beta]]))[0, 0] for t in ts]),
             "no predictor (Wp = I), no EMA": np.exp(-(sigma2 + eta) * ts)}
    exact["BYOL (EMA, stop-grad, learned Wp)"] = exact["no predictor (Wp = I), EMA"]
    exact["SimSiam (stop-grad, learned Wp)"] = exact["no predictor (Wp = I), no EMA"]
    # the solver's per-step error is rtol·|W| + atol per entry: in units of that (relative to ‖W(0)‖) the
    # accumulated error over the 241 outputs stays below 100.
    err = lambda names: max(float(np.max(np.abs(norms[m] - exact[m]) / (1e-10 * exact[m] + 1e-16 / absn[m][:, :1])))  # noqa: E731
                            for m in names)
    coll = lambda names: max(float(exact[m][-1]) for m in names)  # noqa: E731
    nop, lrn = list(variants)[3:], list(variants)[:2]
    e_np, e_l = err(nop), err(lrn)
    # Stop-gradient with a learned predictor survives: some mode of F = WWᵀ stays above the saddle s*_− =
    # p*_−²/α_p (Eq. 16, τ = 1; below it modes collapse), guaranteed when ‖W(t1)‖_F > √(n s*_−).
    pm = float(theory.p_star(1.0, 1.0 + sigma2, eta)[0])
    floor = np.sqrt(n) * pm
    kept = min(float(np.min(absn[m][:, -1])) for m in lrn)
    kept_c = max(float(np.max(absn[m][:, -1])) for m in nop)
    checks = [
        Check("Theorem 2: no stop-gradient, max_{t>0} ‖W(t)‖ / (e^{−λ0 t}‖W(0)‖), λ0 = λ_min(X') + η, X' = σ²I",
              f"{iso[0]:.3f}; ‖W(t1)‖/‖W(0)‖ = {iso[1]:.1e}", "<= 1 (Lemma 2; to 1e-6) and collapse (< 1e-3)",
              thm2(iso), f"with stop-gradient (SimSiam): {iso_c[0]:.2e}; {iso_c[1]:.2f}", thm2(iso_c)),
        Check("Theorem 2, non-isotropic X = diag(0.5 ... 1.5), X' = diag(0.2 ... 0.8): max_{t>0} ‖W(t)‖ / "
              "(e^{−λ0 t}‖W(0)‖), λ0 = λ_min(X') + η", f"{gb[0]:.3f}; ‖W(t1)‖/‖W(0)‖ = {gb[1]:.1e}",
              "<= 1 (to 1e-6) and collapse (< 1e-3)", thm2(gb),
              f"singular X' (X'_11 = 0) at η = 0, λ0 = 0: {sb[0]:.3f}; {sb[1]:.2f}", thm2(sb)),
        Check("Section 2: no predictor (Wp = I), with or without EMA: ‖W(t)‖/‖W(0)‖ vs the exact linear solution "
              "[expm(tM)]_00 (max error over t and seeds)",
              f"{e_np:.1f} solver tolerances; exact ‖W(t1)‖/‖W(0)‖ = {coll(nop):.1e}",
              "0 (< 100 tolerances rtol·|W| + atol); → 0 (< 1e-3)", bool(e_np < 100 and coll(nop) < 1e-3),
              f"learned predictor (BYOL, SimSiam) vs the same solution: {e_l:.1e}", bool(e_l < 100 and coll(lrn) < 1e-3)),
        Check("Section 2: with stop-gradient and a learned predictor (BYOL, SimSiam), ‖W(t1)‖_F (min over seeds)",
              f"{kept:.3f}", f"does not collapse: > √n p*_− = {floor:.3f} (a mode above the saddle)", kept > floor,
              f"no predictor (Wp = I): {kept_c:.1e}", kept_c > floor),
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
        o = ob.measure(("s", "alignment", "commutator_normalized", "asymmetry"), ob.Inputs(W=s.W, Wp=s.Wp, data=data))
        return dict(o, WWt=s.W @ s.W.T, WptWp=s.Wp.T @ s.Wp)

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
        ax.semilogx(ts[1:], o["alignment"][0, 1:, j], label=f"mode {j + 1}")
    ax.set_title("cos(Wp u_j, u_j), seed 0, top modes of F")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.semilogy(ts, o["s"][0, :, :k])
    ax.set_title("eigenvalues s_j of F (seed 0)")
    axes[2].semilogy(ts, o["commutator_normalized"].T, color="C0", alpha=0.6)
    axes[2].set_title("‖[F, Wp]‖ / (‖F‖ ‖Wp‖), all seeds")
    axes[3].plot(ts, o["asymmetry"].T, color="C1", alpha=0.6)
    axes[3].set_title("‖Wp − Wpᵀ‖ / ‖Wp‖, all seeds")
    for ax in axes:
        ax.set_xlabel("t")
    fig.suptitle("Theorem 3 in full Lemma 1 runs: eigenspace alignment of Wp with F (non-symmetric Wp, EMA)")
    note(fig, f"Lemma 1, X = I, X' = σ²I; chosen: σ² = {sigma2}, α_p = {alpha_p}, η = {eta}, β = {beta}, "
               f"n1 = n2 = {n}, W, Wp ~ N(0, {scale}²/n), Wa(0) = 0, {seeds} seeds.")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))

    # Criteria: surviving modes (s_j > 1e-3, a decade above observables.SURVIVAL: alignment is asserted only
    # where the eigenvector is well resolved) aligned to
    # cos > 0.999 (an angle < 2.6°; the commutator must fall 100x, next row, and its normalized value
    # bounds the misalignment of well-separated modes); Theorem 1's residual to 1e-7 (1000 x the solver's
    # rtol 1e-10, accumulated over the 350 outputs). Controls: the same modes at t = 0 (dynamics off);
    # the commutator at t = 0 against itself (dynamics off); Eq. 5 with e^{−ηt} in place of e^{−2ηt}
    # (a wrong theory value).
    alive = o["s"][:, -1] > 10 * ob.SURVIVAL
    cos_alive = o["alignment"][:, -1][alive]
    cos0 = o["alignment"][:, 0][alive]
    min_cos = float(np.min(cos_alive)) if cos_alive.size else float("nan")
    min_cos0 = float(np.min(cos0)) if cos0.size else float("nan")
    comm = o["commutator_normalized"]
    comm0, comm1 = float(np.median(comm[:, 0])), float(np.max(comm[:, -1]))
    comm0max = float(np.max(comm[:, 0]))
    r = float(np.max(resid))
    decay1 = np.exp(-eta * ts)[None, :, None, None]
    r_ctl = float(np.max(np.linalg.norm(o["WWt"] - o["WptWp"] / alpha_p - decay1 * C, axis=(-2, -1))
                         / np.linalg.norm(o["WWt"], axis=(-2, -1))))
    checks = [
        Check("Theorem 3 (full Lemma 1 runs): cos(Wp u_j, u_j) at t1 over surviving modes (s_j > 1e-3), min over seeds",
              f"{min_cos:.6f} ({int(alive.sum())} modes)", "→ 1 (> 0.999)", min_cos > 0.999,
              f"the same modes at t = 0 (dynamics off): {min_cos0:.3f}", min_cos0 > 0.999),
        Check("Theorem 3 (full Lemma 1 runs): normalized commutator, t = 0 (median) → t1 (max)",
              f"{comm0:.2f} → {comm1:.1e}", "→ 0 (at least 100x smaller)", comm1 < 1e-2 * comm0,
              f"dynamics off (t1 = 0): {comm0:.2f} → {comm0max:.2f}", comm0max < 1e-2 * comm0),
        Check("Theorem 1 (Eq. 5): max relative residual ‖WWᵀ − WpᵀWp/α_p − e^{−2ηt}C‖/‖WWᵀ‖ along the runs",
              f"{r:.1e}", "0 (< 1e-7; solver rtol 1e-10)", r < 1e-7, f"e^{{−ηt}} in place of e^{{−2ηt}}: {r_ctl:.1e}",
              r_ctl < 1e-7),
    ]
    return fig, checks
