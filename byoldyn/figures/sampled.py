"""Figures of sampled linear networks (DESIGN.md level 3; THEORY.md sections 1, 10, 12).

- `fig_sampled_ode`: where the ODE is right: sampled SGD runs at several (lr, batch) next to Lemma 1;
- `fig_sampled_table3`: symmetric vs learned predictor, with and without EMA (Table 3 pattern);
- `fig_sampled_alpha_p`: alpha_p > 1 rescues the symmetric predictor without EMA (Fig. 6);
- `fig_sampled_directpred`: DirectPred does not collapse and is aligned from the first update (Eq. 18).

The last three run the Euclidean loss (Eq. 1) and the cosine loss (as real BYOL) side by side.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import observables as ob
from ..model import State
from ..sampled import SGD, Setup, Source, compare, train
from .common import Check, note

__all__ = ["fig_sampled_ode", "fig_sampled_table3", "fig_sampled_alpha_p", "fig_sampled_directpred"]

REL = 1e-2  # a mode survives if s_j > REL * max_j s_j (scale free, so it serves the cosine loss too)


def _obs(t, s: State):
    F_ = ob.F(s.W)
    sj, cos = ob.eigen_alignment(F_, s.Wp)
    w = jnp.clip(sj, 0.0, None)
    return {"modes": jnp.sum(sj > REL * sj[0]).astype(F_.dtype), "norm_W": ob.norm_W(s.W),
            "align": jnp.sum(w * cos) / jnp.maximum(jnp.sum(w), 1e-300), "s": sj}


def _runs(setup, sgd, source, n, seeds, steps, save_every, scale, wp_scale, target="copy", seed=0):
    """`seeds` sampled runs from random starts (vmapped); returns numpy observables (seeds, T, ...) and flow times."""
    def one(k):
        k0, k1 = jax.random.split(k)
        s0 = State.random(k0, n, n, scale=scale, wp_scale=wp_scale, target=target)
        return train(s0, sgd, source, k1, steps, setup=setup, save_every=save_every, observe=_obs)

    r = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(seed), seeds))
    return {k: np.asarray(v) for k, v in r.observed.items()}, np.asarray(r.ts[0]), np.asarray(r.status)


def fig_sampled_ode(size: str = "full"):
    """Sampled SGD vs the ODE (Lemma 1) from the same start, as lr -> 0 and the batch grows (THEORY.md section 1).

    Isotropic data, Euclidean one-view loss, learned Wp, EMA (practice form); the ODE uses
    `to_flow(sgd)`. Left: the top eigenvalues s_j of F; middle: the relative distance of the
    spectrum over flow time; right: its maximum against lr, with exact expectations (batch = ∞) too.
    """
    n, t1, seeds, nsave = (8, 20.0, 4, 40) if size == "full" else (4, 10.0, 2, 20)
    sigma2, beta, eta, scale = 0.5, 0.5, 0.01, 1.0
    settings = [(0.1, 16), (0.05, 64), (0.02, 256), (0.01, 1024)]
    exact_lrs = [0.1, 0.05, 0.02, 0.01]
    src = Source.isotropic(n, sigma2)
    s0 = State.random(jax.random.PRNGKey(1), n, n, scale=scale)
    res, ex = {}, {}
    for lr, B in settings:
        steps = int(round(t1 / lr))
        sgd = SGD(lr=lr, wd=eta, gamma_a=1 - beta * lr)
        res[(lr, B)] = compare(s0, sgd, src, jax.random.PRNGKey(0), steps, setup=Setup(batch=B), seeds=seeds,
                               save_every=steps // nsave)
    for lr in exact_lrs:
        steps = int(round(t1 / lr))
        sgd = SGD(lr=lr, wd=eta, gamma_a=1 - beta * lr)
        ex[lr] = compare(s0, sgd, src, jax.random.PRNGKey(0), steps, setup=Setup(batch=None), save_every=steps // nsave)

    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    cmap = plt.get_cmap("plasma")
    c0 = res[settings[0]]
    for j in range(3):
        ax[0].plot(c0.ts, c0.ode["s"][:, j], "k", lw=2.2, label="ODE (Lemma 1)" if j == 0 else None)
    for i, (key, c) in enumerate(res.items()):
        col = cmap(i / len(res))
        for j in range(3):
            ax[0].plot(c.ts, c.sampled["s"][0, :, j], color=col, lw=1, alpha=0.9,
                       label=f"SGD lr = {key[0]}, batch = {key[1]}" if j == 0 else None)
        d = c.distance["s"]
        ax[1].semilogy(c.ts, np.maximum(d.mean(0), 1e-16), color=col, label=f"lr = {key[0]}, B = {key[1]}")
    ax[0].set(title="top 3 eigenvalues $s_j$ of F (seed 0)", xlabel="flow time t = lr x steps")
    ax[0].legend(fontsize=7)
    ax[1].set(title=r"$\|s - s_{ODE}\| / \|s_{ODE}\|$ (mean over seeds)", xlabel="t")
    ax[1].legend(fontsize=7)
    lrs = [k[0] for k in res]
    dmax = [c.max_distance("s") for c in res.values()]
    dW = [c.max_distance("W") for c in res.values()]
    ax[2].loglog(lrs, dmax, "o-", label="spectrum s, SGD (B grows as lr falls)")
    ax[2].loglog(lrs, dW, "s--", label="weights W, SGD")
    ax[2].loglog(exact_lrs, [ex[l].max_distance("s") for l in exact_lrs], "^-", label="spectrum s, exact (B = ∞)")
    ax[2].set(title="max over t of the distance to the ODE", xlabel="learning rate lr")
    ax[2].legend(fontsize=7)
    fig.suptitle("Where the ODE is right: minibatch SGD on sampled data converges to Lemma 1 as lr -> 0 and batch -> ∞")
    note(fig, f"Chosen: n1 = n2 = {n}, X = I, X' = σ²I, σ² = {sigma2}; W, Wp ~ N(0, {scale}²/n), Wa(0) = 0; "
              f"flow η = wd = {eta}, β = (1 - γ_a)/lr = {beta}, α_p = 1, no momentum; Euclidean one-view loss, "
              f"EMA Wa <- γ_a Wa + (1 - γ_a) W_new; {seeds} seeds; t ∈ [0, {t1:g}]. Batch = 16 lr^-2 / 100.")
    fig.tight_layout(rect=(0, 0.05, 1, 0.94))

    ok_mono = all(a > b for a, b in zip(dmax, dmax[1:]))
    checks = [
        Check("Section 1 / level 3: max_t ‖s − s_ODE‖/‖s_ODE‖ of SGD falls as lr -> 0 and batch grows "
              f"(lr, B) = {', '.join(f'({l}, {b})' for l, b in settings)}",
              ", ".join(f"{d:.4f}" for d in dmax), "strictly decreasing", ok_mono),
        Check(f"Level 3: SGD at lr = {settings[-1][0]}, batch {settings[-1][1]} tracks the ODE",
              f"{dmax[-1]:.4f} (weights W: {dW[-1]:.4f})", "< 0.02", dmax[-1] < 0.02),
        Check("Level 3: exact expectations (batch = ∞): distance to the ODE is O(lr) (Euler + EMA-order bias)",
              f"ratio at lr {exact_lrs[0]} / {exact_lrs[-1]}: "
              f"{ex[exact_lrs[0]].max_distance('s') / ex[exact_lrs[-1]].max_distance('s'):.2f}",
              f"≈ {exact_lrs[0] / exact_lrs[-1]:g} (first order)",
              abs(np.log((ex[exact_lrs[0]].max_distance('s') / ex[exact_lrs[-1]].max_distance('s'))
                         / (exact_lrs[0] / exact_lrs[-1]))) < np.log(1.5)),
    ]
    return fig, checks




_SIGMA2, _WD, _SCALE, _WP_SCALE = 0.5, 0.0133, 0.05, 2.0


def _claim_runs(size, configs, seed=0):
    """Run each `(label, setup, sgd)` of `configs` for the claim figures; returns {label: (obs, ts)}."""
    n, seeds, steps = (16, 3, 3000) if size == "full" else (6, 2, 400)
    src = Source.isotropic(n, _SIGMA2)
    out = {}
    for label, setup, sgd in configs:
        o, ts, _ = _runs(setup, sgd, src, n, seeds, steps, steps // 20, _SCALE, _WP_SCALE, seed=seed)
        out[label] = (o, ts)
    return out, (n, seeds, steps)


def _lr():
    return 0.05


def _note(n, seeds, steps, extra=""):
    lr = _lr()
    return (f"Chosen: n1 = n2 = {n}, X = I, X' = σ²I, σ² = {_SIGMA2}; batch 128, symmetric two-view loss, SGD lr = {lr} "
            f"(no momentum), wd = {_WD} (η = {_WD}, the paper's η̄/α), γ_a = 1 − {0.0133}·lr (β = 0.0133); "
            f"{steps} steps (t = {steps * lr:g}); W ~ N(0, {_SCALE}²/n), Wp ~ N(0, {_WP_SCALE}²/n) (a strong random "
            f"predictor), target starts as a copy of W; {seeds} seeds; a mode survives if s_j > {REL:g} max_j s_j. {extra}")


def _sgd(alpha_p=1.0, **kw):
    lr = _lr()
    return SGD(lr=lr, lr_p=alpha_p * lr, wd=_WD, wd_p=_WD / alpha_p, gamma_a=1 - 0.0133 * lr, **kw)


def _plot_modes(ax, res, labels, title):
    for lab in labels:
        o, ts = res[lab]
        m = o["modes"].mean(0)
        ax.plot(ts, m, label=f"{lab}: {m[-1]:.1f}")
    ax.set(title=title, xlabel="flow time t", ylabel="surviving modes (mean over seeds)")
    ax.legend(fontsize=7)


def fig_sampled_table3(size: str = "full"):
    """Table 3 pattern in the sampled linear model: a symmetric Wp without EMA loses modes; with EMA it does not.

    Symmetric and learned (regular) Wp, with and without EMA, Euclidean (Eq. 1) and cosine loss
    (THEORY.md sections 5, 7.5 (Obs#8), 12).
    """
    configs = []
    for loss in ("euclidean", "cosine"):
        for pred in ("symmetric", "learned"):
            for ema in (True, False):
                configs.append(((loss, pred, ema), Setup(loss=loss, views="symmetric", predictor=pred, ema=ema), _sgd()))
    res, (n, seeds, steps) = _claim_runs(size, configs)
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    final = {k: float(v[0]["modes"][:, -1].mean()) for k, v in res.items()}
    checks = []
    for a, loss in zip(ax, ("euclidean", "cosine")):
        labs = {f"{p}, {'EMA' if e else 'no EMA'}": (loss, p, e) for p in ("symmetric", "learned") for e in (True, False)}
        _plot_modes(a, {k: res[v] for k, v in labs.items()}, list(labs), f"{loss} loss")
        sym_drop = final[(loss, "symmetric", True)] - final[(loss, "symmetric", False)]
        lrn_drop = final[(loss, "learned", True)] - final[(loss, "learned", False)]
        checks.append(Check(f"Table 3 ({loss} loss, sampled linear model): symmetric Wp, surviving modes with EMA vs without",
                            f"{final[(loss, 'symmetric', True)]:.2f} vs {final[(loss, 'symmetric', False)]:.2f} of {n}",
                            "fewer without EMA (partial collapse)", sym_drop >= 1.0))
        if loss == "cosine":
            checks.append(Check("Table 3 (cosine loss): EMA matters more for the symmetric Wp than for the regular one",
                                f"loss of modes without EMA: symmetric {sym_drop:.2f}, regular {lrn_drop:.2f}",
                                "symmetric > regular", sym_drop > lrn_drop))
        else:
            checks.append(Check("Documented difference (Euclidean loss): the regular Wp also loses modes without EMA "
                                "(paper's real nets: 72.9 vs 74.5, nearly no loss)",
                                f"loss of modes without EMA: symmetric {sym_drop:.2f}, regular {lrn_drop:.2f}",
                                "linear model: both lose modes (EMA's curriculum, Obs#8, helps either predictor)",
                                sym_drop >= 1.0 and lrn_drop >= 1.0))
    fig.suptitle("Table 3 pattern, sampled linear BYOL: no EMA + symmetric predictor loses modes; EMA keeps them")
    note(fig, _note(n, seeds, steps, "No run collapses completely: 'collapse' here is the loss of modes (dimensional collapse)."))
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    return fig, checks


def fig_sampled_alpha_p(size: str = "full"):
    """Fig. 6 in the sampled linear model: without EMA, a symmetric Wp survives better with alpha_p > 1.

    alpha_p = lr_p / lr (THEORY.md sections 1, 7.3 (Obs#1), 12); wd_p = wd / alpha_p keeps eta_p = eta (Lemma 1).
    """
    alphas = (1.0, 3.0, 10.0)
    configs = [((loss, a), Setup(loss=loss, views="symmetric", predictor="symmetric", ema=False), _sgd(alpha_p=a))
               for loss in ("euclidean", "cosine") for a in alphas]
    res, (n, seeds, steps) = _claim_runs(size, configs)
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    checks = []
    for a, loss in zip(ax, ("euclidean", "cosine")):
        labs = {f"α_p = {al:g}": (loss, al) for al in alphas}
        _plot_modes(a, {k: res[v] for k, v in labs.items()}, list(labs), f"{loss} loss, symmetric Wp, no EMA")
        m = [float(res[(loss, al)][0]["modes"][:, -1].mean()) for al in alphas]
        checks.append(Check(f"Fig. 6 ({loss} loss, sampled linear model): no EMA, symmetric Wp, surviving modes at "
                            f"α_p = {', '.join(f'{x:g}' for x in alphas)}", ", ".join(f"{x:.2f}" for x in m),
                            "more with α_p > 1", m[-1] > m[0] and m[1] >= m[0]))
    fig.suptitle("Fig. 6 pattern, sampled linear BYOL: α_p > 1 rescues the symmetric predictor without EMA")
    note(fig, _note(n, seeds, steps, "lr_p = α_p lr, wd_p = wd/α_p (so η_p = η)."))
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    return fig, checks


def fig_sampled_directpred(size: str = "full"):
    """DirectPred (Eq. 18, official boost_scale form, ρ = 0.3, ε = 0.1, freq 1) vs a learned Wp, with EMA.

    DirectPred keeps the modes and is aligned with F from the first update (THEORY.md sections 6, 10).
    Alignment: Σ_j s_j cos_j / Σ_j s_j with cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ for eigenvectors u_j of F = W Wᵀ.
    """
    configs = [((loss, pred), Setup(loss=loss, views="symmetric", predictor=pred, ema=True), _sgd(rho=0.3, eps=0.1))
               for loss in ("euclidean", "cosine") for pred in ("directpred", "learned", "directcopy")]
    res, (n, seeds, steps) = _claim_runs(size, configs)
    # the first update alone (save every step)
    src = Source.isotropic(n, _SIGMA2)
    first = {}
    for lab, setup, sgd in configs:
        o, _, _ = _runs(setup, sgd, src, n, seeds, 1, 1, _SCALE, _WP_SCALE)
        first[lab] = o["align"][:, 1]
    fig, ax = plt.subplots(2, 2, figsize=(12, 7.5))
    checks = []
    names = {"directpred": "DirectPred", "learned": "SGD predictor", "directcopy": "DirectCopy"}
    for col, loss in enumerate(("euclidean", "cosine")):
        labs = {names[p]: (loss, p) for p in names}
        _plot_modes(ax[0, col], {k: res[v] for k, v in labs.items()}, list(labs), f"{loss} loss, EMA")
        for k, v in labs.items():
            o, ts = res[v]
            ax[1, col].plot(ts, o["align"].mean(0), label=f"{k}: after 1 step {first[v].mean():.3f}")
        ax[1, col].set(title=f"{loss}: s-weighted alignment of Wp with F", xlabel="flow time t", ylim=(-1.05, 1.05))
        ax[1, col].legend(fontsize=7)
        dp, lr_ = res[(loss, "directpred")][0], res[(loss, "learned")][0]
        m_dp, m_l = float(dp["modes"][:, -1].mean()), float(lr_["modes"][:, -1].mean())
        checks.append(Check(f"DirectPred ({loss} loss, sampled linear model): surviving modes vs the SGD predictor",
                            f"{m_dp:.2f} vs {m_l:.2f} of {n}; min ‖W‖ {float(dp['norm_W'][:, -1].min()):.3f}",
                            "no collapse: at least as many modes", m_dp >= m_l and m_dp >= 0.5 * n))
        a1 = float(first[(loss, "directpred")].min())
        checks.append(Check(f"DirectPred ({loss} loss): alignment of Wp with F after the first update (min over seeds)",
                            f"{a1:.3f} (SGD predictor {float(first[(loss, 'learned')].mean()):.3f})", ">= 0.85 (random Wp: about 0.2)",
                            a1 >= 0.85))
    fig.suptitle("DirectPred in sampled linear BYOL: Wp set from F̂ keeps the modes and is aligned from the first update")
    note(fig, _note(n, seeds, steps, "DirectPred: boost_scale form p_j = sqrt(s_j/s_max) + ε, ρ = 0.3, ε = 0.1, "
                                     "freq = 1; DirectCopy: Wp = F̂/‖F̂‖₂ + εI."))
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig, checks
