"""Figures of sampled linear networks (DESIGN.md level 3; THEORY.md sections 1, 10, 12).

- `fig_sampled_ode`: where the ODE is right: sampled SGD runs at several (lr, batch) next to Lemma 1;
- `fig_sampled_table3`: symmetric vs learned predictor, with and without EMA (Table 3 pattern);
- `fig_sampled_alpha_p`: alpha_p > 1 rescues the symmetric predictor without EMA (Fig. 6);
- `fig_sampled_directpred`: DirectPred keeps every mode under the cosine loss; under the Euclidean loss its
  scale decays (a finding); the learned Wp aligns with F (Eq. 18, Theorem 3).

The last three run the Euclidean loss (Eq. 1) and the cosine loss (as real BYOL) side by side.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import observables as ob
from ..model import State
from ..predictors import PREDICTORS, Direct, DirectPred, as_predictor
from ..sampled import SGD, Setup, Source, compare, train
from .common import Check, Finding, Z, diff_ci, fmt_ms, mean_se, note

__all__ = ["fig_sampled_ode", "fig_sampled_table3", "fig_sampled_alpha_p", "fig_sampled_directpred"]

# Here a mode survives if s_j > REL * max_j s_j, an explicit threshold in place of observables.SURVIVAL
# (scale free, so it serves the cosine loss too; these short SGD runs leave dying modes only a few decades
# down at the horizon). Surviving modes
# settle at s_j ~ p*_+² of the same order as the top one, collapsing ones decay exponentially (Eq. 12 at
# rate >= 2η): two decades below the top separate the two groups. A relative count misses a decay of the
# whole scale: DirectPred with the Euclidean loss is counted on the absolute scale (S_START, below).
REL = 1e-2


_OBSERVED = ("n_modes", "norm_W", "alignment_weighted", "s")  # names of observables.REGISTRY


def _obs(t, s: State):
    return ob.measure(_OBSERVED, ob.Inputs(W=s.W, Wp=s.Wp, threshold=REL, relative=True))


def runs(setup, sgd, source, n, seeds, steps, save_every, scale, wp_scale, target="copy", seed=0):
    """`seeds` sampled runs from random starts (vmapped); returns numpy observables (seeds, T, ...) and flow times."""
    def one(k):
        k0, k1 = jax.random.split(k)
        s0 = State.random(k0, n, n, scale=scale, wp_scale=wp_scale, target=target)
        return train(s0, sgd, source, k1, steps, setup=setup, save_every=save_every, observe=_obs)

    r = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(seed), seeds))
    return {k: np.asarray(v) for k, v in r.observed.items()}, np.asarray(r.ts[0]), np.asarray(r.status)


def fig_sampled_ode(size: str = "full", seed: int = 0):
    """Sampled SGD vs the ODE (Lemma 1) from the same start, as lr -> 0 and the batch grows (THEORY.md section 1).

    Isotropic data, Euclidean one-view loss, learned Wp, EMA (practice form); the ODE uses
    `to_flow(sgd)`. Left: the top eigenvalues s_j of F; middle: the relative distance of the
    spectrum over flow time; right: its maximum against lr, with exact expectations (batch = ∞) too.
    """
    n, t1, seeds, nsave = (8, 20.0, 4, 40) if size == "full" else (4, 10.0, 3, 20)
    sigma2, beta, eta, scale = 0.5, 0.5, 0.01, 1.0
    settings = [(0.1, 16), (0.05, 64), (0.02, 256), (0.01, 1024)]
    exact_lrs = [0.1, 0.05, 0.02, 0.01]
    src = Source.isotropic(n, sigma2)
    s0 = State.random(jax.random.PRNGKey(1), n, n, scale=scale)
    res, ex = {}, {}
    for lr, B in settings:
        steps = int(round(t1 / lr))
        sgd = SGD(lr=lr, wd=eta, gamma_a=1 - beta * lr)
        res[(lr, B)] = compare(s0, sgd, src, jax.random.PRNGKey(seed), steps, setup=Setup(batch=B), seeds=seeds,
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

    # Per seed: the max over t of the distance of its spectrum to the ODE. Criteria, a priori:
    # (1) each step to a smaller lr and larger batch lowers the distance: the difference's Z-SE interval > 0;
    #     control: the first setting against itself with other seeds (an A/A comparison, nothing changes);
    # (2) "tracks the ODE": mean + Z SE below 2 lr, the first-order discretization error (row 3) with a unit
    #     constant, doubled for the minibatch noise; control: the setting (0.1, 16), against its own 2 lr;
    # (3) exact expectations: the distance is first order in lr, so its ratio between lr = 0.1 and 0.01 is 10
    #     up to a factor 1.5 (a second-order term up to half the first at lr = 0.1); control: the
    #     second-order prediction, 100 (a wrong theory value).
    per = {k: np.max(c.distance["s"], axis=1) for k, c in res.items()}
    keys = list(per)
    steps_ok = [diff_ci(per[a], per[b])[1] > 0 for a, b in zip(keys, keys[1:])]
    lr0, B0 = settings[0]
    aa = compare(s0, SGD(lr=lr0, wd=eta, gamma_a=1 - beta * lr0), src, jax.random.PRNGKey(seed + 7777), int(round(t1 / lr0)),
                 setup=Setup(batch=B0), seeds=seeds, save_every=int(round(t1 / lr0)) // nsave)
    d_aa = diff_ci(per[keys[0]], np.max(aa.distance["s"], axis=1))
    track = lambda x, lr: bool(mean_se(x)[0] + Z * mean_se(x)[1] < 2 * lr)  # noqa: E731
    ratio = ex[exact_lrs[0]].max_distance('s') / ex[exact_lrs[-1]].max_distance('s')
    order = lambda pred: bool(abs(np.log(ratio / pred)) < np.log(1.5))  # noqa: E731
    lr_ratio = exact_lrs[0] / exact_lrs[-1]
    checks = [
        Check("Section 1 / level 3: max_t ‖s − s_ODE‖/‖s_ODE‖ of SGD falls as lr -> 0 and batch grows "
              f"(lr, B) = {', '.join(f'({l}, {b})' for l, b in settings)} (mean ± SE over {seeds} seeds)",
              ", ".join(fmt_ms(per[k], 4) for k in keys), f"strictly decreasing (each difference's {Z:g}-SE interval > 0)",
              all(steps_ok), f"({lr0}, {B0}) against itself, other seeds: difference {d_aa[0]:.4f} "
              f"[{d_aa[1]:.4f}, {d_aa[2]:.4f}]", bool(d_aa[1] > 0)),
        Check(f"Level 3: SGD at lr = {settings[-1][0]}, batch {settings[-1][1]} tracks the ODE",
              f"{fmt_ms(per[keys[-1]], 4)} (weights W: {dW[-1]:.4f})", f"mean + {Z:g} SE < 2 lr = {2 * settings[-1][0]:g}",
              track(per[keys[-1]], settings[-1][0]), f"lr = {lr0}, batch {B0}: {fmt_ms(per[keys[0]], 3)} vs 2 lr = {2 * lr0:g}",
              track(per[keys[0]], lr0)),
        Check("Level 3: exact expectations (batch = ∞): distance to the ODE is O(lr) (Euler + EMA-order bias)",
              f"ratio at lr {exact_lrs[0]} / {exact_lrs[-1]}: {ratio:.2f}", f"≈ {lr_ratio:g} (first order; within x1.5)",
              order(lr_ratio), f"second order, ≈ {lr_ratio ** 2:g}", order(lr_ratio ** 2)),
    ]
    return fig, checks



#: the sampled figures' data (X' = SIGMA2 I), weight decay, and the scales of the random starts of W and Wp
SIGMA2, WD, SCALE, WP_SCALE = 0.5, 0.0133, 0.05, 2.0
#: the mean eigenvalue of F = W Wᵀ at the start (E tr F(0)/n for W ~ N(0, SCALE²/n)): the absolute survival
#: threshold of the Euclidean-loss DirectPred comparison (`fig_sampled_directpred`)
S_START = SCALE ** 2
# Seeds per configuration: every claim on sampled runs is decided on a Z-SE interval over these seeds;
# 8 resolve the differences of >= 1.5 modes that the claims are about (per-seed SD about 0.7 modes) at
# Z = 3, within the time budget of `byoldyn reproduce`. The small size (tests) runs n = 8 for 600 steps
# with 12 seeds: its effects are smaller (fewer modes, a shorter run), so it needs more seeds.
_SEEDS = {"full": 8, "small": 12}
_CACHE: dict = {}


def size_of(size):
    return (16, _SEEDS["full"], 3000) if size == "full" else (8, _SEEDS["small"], 600)


def _lr():
    return 0.05


def sgd(alpha_p=1.0, **kw):
    """The sampled figures' SGD hyperparameters with predictor learning-rate ratio `alpha_p`."""
    lr = _lr()
    return SGD(lr=lr, lr_p=alpha_p * lr, wd=WD, wd_p=WD / alpha_p, gamma_a=1 - 0.0133 * lr, **kw)


def claim_config(loss, pred, ema=True, alpha_p=1.0, form="boost_scale", eps=0.1):
    """A claim configuration: its cache key, `Setup` and `SGD` (symmetric two-view loss, batch 128)."""
    key = (loss, pred, ema, alpha_p, form, eps)
    p = as_predictor(pred, eps=eps, rho=0.3, form=form) if PREDICTORS[pred].direct else pred  # the object carries ε
    return key, Setup(loss=loss, views="symmetric", predictor=p, ema=ema), sgd(alpha_p=alpha_p)


def claim_runs(size, configs, seed=0):
    """Run each `(key, setup, sgd)` of `configs` (from `claim_config`; shared between figures through a cache) with
    seeds `seed` ... `seed + seeds − 1`; returns {key: (obs, ts)} and (n, seeds, steps)."""
    n, seeds, steps = size_of(size)
    src = Source.isotropic(n, SIGMA2)
    out = {}
    for key, setup, sgd in configs:
        ck = (size, seed, key)
        if ck not in _CACHE:
            o, ts, _ = runs(setup, sgd, src, n, seeds, steps, steps // 20, SCALE, WP_SCALE, seed=seed)
            _CACHE[ck] = (o, ts)
        out[key] = _CACHE[ck]
    return out, (n, seeds, steps)


def _final(res, key):
    """Per-seed surviving modes at the end of the run."""
    return res[key][0]["n_modes"][:, -1]


def _note(n, seeds, steps, extra=""):
    lr = _lr()
    return (f"Chosen: n1 = n2 = {n}, X = I, X' = σ²I, σ² = {SIGMA2}; batch 128, symmetric two-view loss, SGD lr = {lr} "
            f"(no momentum), wd = {WD} (η = {WD}, the paper's η̄/α), γ_a = 1 − {0.0133}·lr (β = 0.0133); "
            f"{steps} steps (t = {steps * lr:g}); W ~ N(0, {SCALE}²/n), Wp ~ N(0, {WP_SCALE}²/n) (a strong random "
            f"predictor), target starts as a copy of W; {seeds} seeds; a mode survives if s_j > {REL:g} max_j s_j. {extra}")


def _plot_modes(ax, res, labels, title, count=lambda o: o["n_modes"]):
    """Surviving modes (mean over seeds) over time; `count(obs)` gives them per seed and save (default: relative)."""
    for lab in labels:
        o, ts = res[lab]
        m = count(o).mean(0)
        ax.plot(ts, m, label=f"{lab}: {m[-1]:.1f}")
    ax.set(title=title, xlabel="flow time t", ylabel="surviving modes (mean over seeds)")
    ax.legend(fontsize=7)


def _more(claim, a, b, names, n, predicted):
    """A claim "a keeps more modes than b" decided on the Z-SE interval of the difference; its control is
    the A/A comparison of b's seeds split in two halves (the same configuration: no difference may appear)."""
    d = diff_ci(a, b, res=1.0)
    dc = diff_ci(b[0::2], b[1::2], res=1.0)
    return Check(claim, f"{names[0]} {fmt_ms(a, res=1.0)} vs {names[1]} {fmt_ms(b, res=1.0)} of {n} (difference {d[0]:.2f}, "
                 f"{Z:g}-SE interval [{d[1]:.2f}, {d[2]:.2f}])", predicted + " (interval > 0)", bool(d[1] > 0),
                 f"{names[1]} vs {names[1]}, disjoint halves of the seeds: {dc[0]:.2f} [{dc[1]:.2f}, {dc[2]:.2f}]",
                 bool(dc[1] > 0))


def fig_sampled_table3(size: str = "full", seed: int = 0):
    """Table 3 pattern in the sampled linear model: a symmetric Wp without EMA loses modes; with EMA it does not.

    Symmetric and learned (regular) Wp, with and without EMA, Euclidean (Eq. 1) and cosine loss
    (THEORY.md sections 5, 7.5 (Obs#8), 12). The regular Wp losing modes without EMA too is a finding.
    """
    cfgs = {(loss, pred, ema): claim_config(loss, pred, ema) for loss in ("euclidean", "cosine")
            for pred in ("symmetric", "learned") for ema in (True, False)}
    res, (n, seeds, steps) = claim_runs(size, list(cfgs.values()), seed)
    fin = {k: _final(res, c[0]) for k, c in cfgs.items()}
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    checks, drops = [], {}
    for a, loss in zip(ax, ("euclidean", "cosine")):
        labs = {f"{p}, {'EMA' if e else 'no EMA'}": cfgs[(loss, p, e)][0] for p in ("symmetric", "learned")
                for e in (True, False)}
        _plot_modes(a, {k: res[v] for k, v in labs.items()}, list(labs), f"{loss} loss")
        checks.append(_more(f"Table 3 ({loss} loss, sampled linear model): symmetric Wp, surviving modes with EMA vs "
                            "without", fin[(loss, "symmetric", True)], fin[(loss, "symmetric", False)],
                            ("EMA", "no EMA"), n, "fewer without EMA (partial collapse)"))
        drops[loss] = [diff_ci(fin[(loss, p, True)], fin[(loss, p, False)], res=1.0) for p in ("symmetric", "learned")]
    txt = "; ".join(f"{loss}: symmetric {d[0][0]:.2f} [{d[0][1]:.2f}, {d[0][2]:.2f}], regular {d[1][0]:.2f} "
                    f"[{d[1][1]:.2f}, {d[1][2]:.2f}]" for loss, d in drops.items())
    checks.append(Finding("Table 3: without EMA the regular (learned) Wp keeps its accuracy while the symmetric one "
                          "collapses", f"modes lost without EMA ({Z:g}-SE intervals): {txt}",
                          "STL-10 one-layer linear, no bias: regular 74.51 → 72.85 (−1.7), symmetric 75.09 → 36.62",
                          "in the linear model EMA's curriculum (Obs#8: a small τ keeps Δ_j small) helps either "
                          "predictor; the learned Wp's extra freedom does not replace it, so both lose modes"))
    fig.suptitle("Table 3 pattern, sampled linear BYOL: no EMA + symmetric predictor loses modes; EMA keeps them")
    note(fig, _note(n, seeds, steps, "No run collapses completely: 'collapse' here is the loss of modes (dimensional collapse)."))
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    return fig, checks


def fig_sampled_alpha_p(size: str = "full", seed: int = 0):
    """Fig. 6 in the sampled linear model: without EMA, a symmetric Wp survives better with alpha_p > 1.

    alpha_p = lr_p / lr (THEORY.md sections 1, 7.3 (Obs#1), 12); wd_p = wd / alpha_p keeps eta_p = eta (Lemma 1).
    """
    alphas = (1.0, 10.0)
    cfgs = {(loss, a): claim_config(loss, "symmetric", False, alpha_p=a) for loss in ("euclidean", "cosine") for a in alphas}
    res, (n, seeds, steps) = claim_runs(size, list(cfgs.values()), seed)
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    checks = []
    for a, loss in zip(ax, ("euclidean", "cosine")):
        labs = {f"α_p = {al:g}": cfgs[(loss, al)][0] for al in alphas}
        _plot_modes(a, {k: res[v] for k, v in labs.items()}, list(labs), f"{loss} loss, symmetric Wp, no EMA")
    hi, lo = (_final(res, cfgs[("cosine", a)][0]) for a in (10.0, 1.0))
    row = _more("Fig. 6 (cosine loss, sampled linear model): no EMA, symmetric Wp, surviving modes at α_p = 10 vs 1",
                hi, lo, ("α_p = 10", "α_p = 1"), n, "more with α_p > 1")
    if size != "full":  # the rescue develops after t ≈ 100 (2000 steps): at 600 steps the verdict is seed noise
        row = dataclasses.replace(row, undecided=f"the α_p rescue develops after t ≈ 100, beyond this size's t = "
                                                 f"{steps * _lr():g}; decided at size full")
    checks.append(row)
    # The Euclidean loss (Eq. 1) is reported as a finding: its rescue is within the seed noise (an interval
    # that includes 0 at 12 seeds too: 4.42 ± 0.31 vs 3.75 ± 0.28).
    hi, lo = (_final(res, cfgs[("euclidean", a)][0]) for a in (10.0, 1.0))
    d = diff_ci(hi, lo, res=1.0)
    checks.append(Finding("Fig. 6 with the Euclidean loss (Eq. 1): α_p > 1 rescues the symmetric Wp without EMA",
                          f"surviving modes α_p = 10: {fmt_ms(hi, res=1.0)}, α_p = 1: {fmt_ms(lo, res=1.0)} of {n} "
                          f"(difference {d[0]:.2f}, {Z:g}-SE interval [{d[1]:.2f}, {d[2]:.2f}])",
                          "real nets (cosine loss): α_p > 1 makes the symmetric Wp work without EMA",
                          "not resolved at 8 seeds (nor at 12 for two disjoint seed sets: 4.42 vs 3.75 and 4.42 vs "
                          "4.00); the cause is not established here. A likely one: with the unnormalized loss the "
                          "scale of Wp matters and a fast predictor grows p_j early, which Eq. 17 penalizes; with "
                          "the cosine loss α_p rescues clearly (row above)"))
    fig.suptitle("Fig. 6 pattern, sampled linear BYOL: α_p > 1 rescues the symmetric predictor without EMA")
    note(fig, _note(n, seeds, steps, "lr_p = α_p lr, wd_p = wd/α_p (so η_p = η)."))
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    return fig, checks


class _ScrambledBasis(Direct):
    """DirectPred's eigenvalues on a fixed random orthonormal basis R instead of F̂'s eigenvectors: Wp = R diag(p) Rᵀ
    with p = g(s) in the order of F̂'s ascending eigenvalues s (the alignment removed, the spectrum kept)."""

    name: ClassVar[str] = "directpred-scrambled"
    title: ClassVar[str] = "DirectPred, scrambled basis"
    inner: DirectPred
    R: jax.Array

    def __init__(self, inner: DirectPred, R):
        self.inner, self.R = inner, jnp.asarray(R)

    eps = property(lambda self: self.inner.eps)
    rho = property(lambda self: self.inner.rho)
    freq = property(lambda self: self.inner.freq)
    beta_F = property(lambda self: self.inner.beta_F)

    def modes(self, s):
        return self.inner.modes(s)

    def matrix(self, F):
        p = self.modes(jnp.linalg.eigvalsh(0.5 * (F + jnp.swapaxes(F, -1, -2))))
        return (self.R * p[..., None, :]) @ self.R.T


def scrambled_config(n):
    """The configuration of DirectPred (`claim_config("euclidean", "directpred")`) with its eigenbasis scrambled (a fixed
    random orthonormal basis, the same for every seed)."""
    key, setup, sgd_ = claim_config("euclidean", "directpred")
    R = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(2718), (n, n)))[0]
    pred = _ScrambledBasis(setup.predictor, R)
    return key + ("scrambled",), Setup(loss=setup.loss, views=setup.views, predictor=pred, ema=setup.ema), sgd_


def euclidean_finding(res, cfgs, scrambled, n):
    """DirectPred with the Euclidean loss: its modes counted on the absolute scale (s_j >= S_START) against the SGD
    predictor's and the scrambled basis's, with the relative count and the decay of its scale beside them."""
    o_dp, o_ln, o_sc = (res[k][0] for k in (cfgs[("euclidean", "directpred")][0], cfgs[("euclidean", "learned")][0],
                                            scrambled))
    a_dp, a_ln, a_sc = ((o["s"][:, -1] >= S_START).sum(-1) for o in (o_dp, o_ln, o_sc))
    d = diff_ci(a_dp, a_ln, res=1.0)
    smax0, smax1 = (float(np.median(o_dp["s"][:, i, 0])) for i in (0, -1))
    w0, w1 = (float(np.median(o_dp["norm_W"][:, i])) for i in (0, -1))
    return Finding(
        "DirectPred (euclidean loss, sampled linear model): surviving modes vs the SGD predictor, counted on the "
        f"absolute scale (s_j(t1) ≥ {S_START:g}, the mean eigenvalue of F at the start)",
        f"DirectPred {fmt_ms(a_dp, res=1.0)} vs SGD predictor {fmt_ms(a_ln, res=1.0)} of {n} (difference {d[0]:.2f} "
        f"[{d[1]:.2f}, {d[2]:.2f}]); DirectPred's eigenvalues on a scrambled basis: {fmt_ms(a_sc, res=1.0)}. DirectPred "
        f"relative to its largest mode: {fmt_ms(o_dp['n_modes'][:, -1], res=1.0)}, while max s_j falls {smax0:.1e} → "
        f"{smax1:.1e} and ‖W‖ {w0:.2f} → {w1:.2f} (medians)",
        "DirectPred does not collapse and keeps the modes a learned predictor loses (Tables 6, 8; trained with "
        "the cosine loss)",
        "the code form sets the top mode's p = 1 + ε > τ/κ, so with the Euclidean loss every mode decays (docs/"
        "directpred_modes.md D3: η_c < 0 at the mode level); the EMA target, lagging W, slows it to the slow rate of "
        "Eqs. 12-13 at p = 1 + ε, 2β(1 − p/(κp² + η)) ≈ 0.011 for s. Only the "
        "shape survives (s_j / max s → 1): counted relative to the largest mode DirectPred keeps every mode, a "
        "count that misses the collapse of the scale and that a scrambled basis also passes against the SGD "
        "predictor. The scale-free cosine loss keeps the shape (the cosine row). On a fixed scrambled basis the "
        "same eigenvalues act as a fixed Wp: F aligns with it, and its directions with p_j(τ − κp_j) > η grow"
    )


def fig_sampled_directpred(size: str = "full", seed: int = 0):
    """DirectPred (Eq. 18; official boost_scale form, ρ = 0.3, ε = 0.1, freq 1) vs a learned Wp, with EMA; and
    Eq. 18 as printed against the official code's form (THEORY.md sections 6, 10.1-10.2).

    Alignment: Σ_j s_j cos_j / Σ_j s_j with cos_j = u_jᵀ Wp u_j / ‖Wp u_j‖ for eigenvectors u_j of F = W Wᵀ.
    """
    cfgs = {(loss, pred): claim_config(loss, pred) for loss in ("euclidean", "cosine") for pred in ("directpred", "learned")}
    forms = {(f, e): claim_config("cosine", "directpred", form=f, eps=e) for f in ("boost_scale", "paper") for e in (0.1, 0.0)}
    scr = scrambled_config(size_of(size)[0])
    res, (n, seeds, steps) = claim_runs(size, list(cfgs.values()) + list(forms.values()) + [scr], seed)
    fig, ax = plt.subplots(2, 2, figsize=(12, 7.5))
    checks = []
    names = {"directpred": "DirectPred", "learned": "SGD predictor"}
    # With the Euclidean loss (Eq. 1) F has the theory's scale (X = I), and a mode's survival is counted on it:
    # s_j(t1) >= S_START = SCALE² (2.5e-3), the mean eigenvalue of F at the start (E tr F(0)/n for W ~ N(0,
    # SCALE²/n)): a surviving mode heads for s*_+ = p*_+²/α_p ≈ 0.4 (Eq. 16, τ = 1), a collapsing one decays, so
    # a survivor ends at least at the size the modes started at. Counted relative to the largest mode (REL), a
    # collapse of the whole scale goes unseen: the shape can stay flat while every s_j decays. The cosine loss
    # is scale-free (only the shape of W matters), so its count stays relative.
    absolute = lambda o: (o["s"] >= S_START).sum(-1)  # noqa: E731
    for col, loss in enumerate(("euclidean", "cosine")):
        labs = {names[p]: cfgs[(loss, p)][0] for p in names}
        if loss == "euclidean":
            labs["DirectPred, scrambled basis"] = scr[0]
            _plot_modes(ax[0, col], {k: res[v] for k, v in labs.items()}, list(labs),
                        f"{loss} loss, EMA: modes with s_j ≥ {S_START:g} (absolute)", count=absolute)
        else:
            _plot_modes(ax[0, col], {k: res[v] for k, v in labs.items()}, list(labs),
                        f"{loss} loss, EMA: modes with s_j > {REL:g} max s (relative)")
        for k, v in labs.items():
            o, ts = res[v]
            ax[1, col].plot(ts, o["alignment_weighted"].mean(0), label=k)
        ax[1, col].set(title=f"{loss}: s-weighted alignment of Wp with F", xlabel="flow time t", ylim=(-1.05, 1.05))
        ax[1, col].legend(fontsize=7)
        if loss == "cosine":
            checks.append(_more(f"DirectPred ({loss} loss, sampled linear model): surviving modes vs the SGD predictor",
                                _final(res, cfgs[(loss, "directpred")][0]), _final(res, cfgs[(loss, "learned")][0]),
                                ("DirectPred", "SGD predictor"), n, "no collapse: more modes"))
        else:
            checks.append(euclidean_finding(res, cfgs, scr[0], n))
        # Theorem 3 at level 3: the learned Wp's eigenvectors align with F's during training (DirectPred's
        # alignment holds by construction, so it tests nothing). Control: dynamics off (t = 0 against t = 0).
        al = res[cfgs[(loss, "learned")][0]][0]["alignment_weighted"]
        d = diff_ci(al[:, -1], al[:, 0])
        d0 = diff_ci(al[:, 0], al[:, 0])
        checks.append(Check(f"Theorem 3 ({loss} loss, sampled linear model): s-weighted alignment of the SGD predictor "
                            "with F, t1 vs t = 0", f"{fmt_ms(al[:, -1])} vs {fmt_ms(al[:, 0])} (interval of the rise "
                            f"[{d[1]:.2f}, {d[2]:.2f}])", "rises (interval > 0)", bool(d[1] > 0),
                            f"dynamics off (t = 0 vs t = 0): [{d0[1]:.2f}, {d0[2]:.2f}]", bool(d0[1] > 0)))
    # Eq. 18 as printed, p_j = sqrt(s_j) + ε max s_j, vs the official code, p_j ∝ sqrt(s_j) + ε sqrt(max s_j)
    # (THEORY.md 10.2): under the cosine loss only Wp's shape matters, and the boost of weak modes relative to
    # the strong ones is ε sqrt(max s_j) in the paper's form against ε in the code's: with max s_j < 1 the
    # printed form boosts less. Reported as a finding (no resolvable difference in surviving modes at 12
    # seeds: 16.00 vs 15.92 ± 0.08); ε = 0, where the forms differ by a scale only, is shown beside it.
    fo = {k: _final(res, c[0]) for k, c in forms.items()}
    smax = float(np.median(res[forms[("paper", 0.1)][0]][0]["s"][:, -1, 0]))
    d = diff_ci(fo[("boost_scale", 0.1)], fo[("paper", 0.1)], res=1.0)
    dc = diff_ci(fo[("boost_scale", 0.0)], fo[("paper", 0.0)], res=1.0)
    checks.append(Finding("DirectPred, Eq. 18 as printed (p_j = sqrt(s_j) + ε max s_j) vs the official code "
                          "(p_j ∝ sqrt(s_j) + ε sqrt(max s_j), THEORY.md 10.2), cosine loss, sampled linear model",
                          f"surviving modes: code {fmt_ms(fo[('boost_scale', 0.1)], res=1.0)}, printed "
                          f"{fmt_ms(fo[('paper', 0.1)], res=1.0)} of {n} (difference {d[0]:.2f} [{d[1]:.2f}, "
                          f"{d[2]:.2f}]); at ε = 0: {dc[0]:.2f}; max_j s_j at t1 {smax:.2g}",
                          "the paper prints Eq. 18; its experiments (Table 6's ε column) ran the code's form",
                          "with max s_j < 1 the printed form boosts the weak modes sqrt(max s_j) times less, yet the "
                          "linear model keeps (nearly) every mode either way: the DirectPred predictor alone "
                          "prevents the collapse here, so the ε boost is not what matters"))
    ax[0, 1].plot(*(lambda o, ts: (ts, o["n_modes"].mean(0)))(*res[forms[("paper", 0.1)][0]]), "--",
                  label="DirectPred, Eq. 18 as printed")
    ax[0, 1].legend(fontsize=7)
    fig.suptitle("DirectPred in sampled linear BYOL: keeps the modes with the cosine loss, not the scale with the "
                 "Euclidean one")
    note(fig, _note(n, seeds, steps, "DirectPred: boost_scale form p_j = sqrt(s_j/s_max) + ε, ρ = 0.3, ε = 0.1, "
                                     "freq = 1; dashed: Eq. 18 as printed, p_j = sqrt(s_j) + ε max s_j. Euclidean "
                                     f"panel: a mode survives if s_j ≥ {S_START:g} (absolute: the mean eigenvalue of "
                                     "F at the start); scrambled basis: Wp = R diag(p) Rᵀ, R a fixed random basis."))
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig, checks
