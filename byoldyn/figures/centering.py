"""Batch centering, BatchNorm's zero-mean step, and the implicit contrastive term (docs/centering.md; THEORY.md 13).

The companion paper (arXiv 2010.00578) states that in BYOL "the combination of BatchNorm and a predictor network
creates an implicit contrastive term, acting as an approximate covariance operator". In the linear model the
centered update's expectation at batch B is Lemma 1 on `Data.centered(B, m)`: X → (1 − 1/B)(X − m mᵀ),
X' → (1 − 1/B) X'. `fig_centering` checks that expectation against the averaged SGD update, the added term
against its closed form, and runs the 2 × 2 (learned predictor or Wp = I) × (centering or none) on mean-shifted
data: which directions survive and how much of W lies along the mean μ.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import theory
from ..flows.matrix import vector_field
from ..model import Data, Hyper, State
from ..sampled import CENTERS, SGD, Setup, Source, from_flow, init_train_state, sgd_step, to_flow, train
from ..solution import SUCCEEDED
from .common import Check, Finding, Z, mean_se, note

__all__ = ["fig_centering", "centering_runs", "cell_metrics", "cell_verdict", "contrastive_term", "update_check",
           "zscores", "CELLS"]

TAU = 1.0  # τ = 1 at every fixed point with EMA (Eq. 13)
#: the 2 × 2's data: Σx = diag(X_DIAG), Σn = XP I, mean μ = MEAN_NORM e_0 along the weakest covariance direction
X_DIAG, XP, MEAN_NORM = (0.1, 1.2, 1.0, 0.8), 0.4, 2.0
ETA, ALPHA_P, BETA, LR, BATCH = 0.06, 1.0, 1.0, 0.05, 64
#: (predictor, center) of the 2 × 2
CELLS = (("learned", "none"), ("learned", "center"), ("identity", "none"), ("identity", "center"))
#: the derivation check: batch size, batches averaged, and the bound on max |z| over the 21 entries of (dW, dWp)
CHECK_B, CHECK_K, CHECK_ZMAX = 4, 2000, 4.0
# CHECK_ZMAX, fixed before comparing: z = (mean of K updates − derived) / (batch-to-batch SD / √K) per entry is
# N(0, 1) up to O(K^{-1/2}) (CLT; K = 2000); P(max over 21 entries > 4) ≈ 21 × 6.3e-5 = 1.3e-3.
# The 2 × 2 verdicts (criteria fixed from the mode theory before the runs, its values in the comments):
# the mode theory on X = diag(x + |μ|² e_0) (uncentered) keeps modes {0, 1, 2, 3} (η_c = 0.93, 0.23, 0.18, 0.13,
# each ≥ 2.2 η) with p*_+ = (0.90, 0.70, 0.65, 0.58): fraction of ‖W‖² along μ 0.39, top singular vector μ; on
# Data.centered(64, μ) mode 0 has η_c = 0.005 < η/12 and dies: {1, 2, 3}, fraction 0. A cell is
# "mean-collapse" when the fraction's mean − Z SE > FRAC_HI, "mean-free" when its mean + Z SE < FRAC_LO (about a
# factor 2 inside the predicted 0.39, and 0.05 above the predicted 0), "collapsed" when every seed's ‖W‖² is below
# FLOOR (no survivor), else "undecided". FLOOR: 10% of the smallest surviving p*²/α_p on Data.centered(64, μ)
# (0.0335); a surviving mode sits at p*²/α_p ≥ 0.335.
FRAC_HI, FRAC_LO = 0.2, 0.05


def _source(mean: bool) -> Source:
    mu = np.zeros(len(X_DIAG)) if not mean else MEAN_NORM * np.eye(len(X_DIAG))[0]
    return Source.additive(np.diag(X_DIAG), XP * np.eye(len(X_DIAG)), mean=mu)


def _theory(center: bool, mean: bool, batch: int = BATCH):
    """Mode theory (A3) on the run's moments: (alive, p*_+) per axis."""
    d = _source(mean).centered_moments(batch) if center else _source(mean).moments()
    X, Xp = (np.diag(np.asarray(a)) for a in d.matrices())
    data = Data.diagonal(X, Xp)
    alive = ETA < np.asarray(theory.eta_c(TAU, data))
    return alive, np.where(alive, np.asarray(theory.p_star(TAU, data, ETA)[1]), 0.0)


def _size(size):
    return (16, 120.0) if size == "full" else (6, 60.0)


def centering_runs(size: str = "small", seeds=None):
    """Minibatch SGD (BYOL with EMA, Euclidean one-view loss, batch 64) for each (predictor, center) of `CELLS`, on
    the mean-shifted source and (the control) on the same source with μ = 0, one run per seed of `seeds` (default
    0..S−1, S = 6 small, 16 full); seed s starts from the same state in every cell. One compilation. The start
    (W entries N(0, 1), Wp = 0.5 I + N(0, 0.1²)) puts every mode's p above its basin boundary p*_−: which modes
    survive is then the mode theory's {j : η < η_c(j)}, not a basin draw (from Wp entries N(0, 0.3²) a weak mode
    whose p starts negative collapses in some seeds, with or without centering).

    **Returns:** {(predictor, center, mean): (G, ts, status)}, `mean` True or False, G the Gram WᵀW at each save,
    (seeds, saves, n1, n1)."""
    nseeds, t1 = _size(size)
    seeds = list(range(nseeds)) if seeds is None else list(seeds)
    sgd = from_flow(Hyper(alpha_p=ALPHA_P, eta=ETA, beta=BETA), LR)
    src, steps, n = _source(True), int(round(t1 / LR)), len(X_DIAG)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    mus = jnp.stack([src.mu, jnp.zeros_like(src.mu)])  # the identity cells run with μ only

    def one(k, mu, setup):  # W entries N(0, 1), Wp = 0.5 I + N(0, 0.1²) entries (every mode's p above p*_−), Wa = W
        k0, k1 = jax.random.split(k)
        s0 = State.random(k0, n, n, scale=np.sqrt(n), wp_scale=0.1 * np.sqrt(n), target="copy")
        s0 = State(s0.W, s0.Wp + 0.5 * jnp.eye(n, dtype=s0.Wp.dtype), s0.Wa)
        r = train(s0, sgd, eqx.tree_at(lambda s: s.mu, src, mu), k1, steps, setup=setup, save_every=steps // 50,
                  observe=lambda t, s: s.W.T @ s.W)
        return r.observed, r.ts, r.status

    @jax.jit
    def all_cells(keys):
        # seeds by lax.map, the means by vmap: the keys stay unbatched (a vmapped key makes XLA's compile 3x slower)
        return [jax.lax.map(lambda k, st=Setup(batch=BATCH, predictor=p, center=c), ms=(mus if p == "learned"
                                                                                      else mus[:1]):
                            jax.vmap(lambda mu: one(k, mu, st))(ms), keys) for p, c in CELLS]

    out = {}
    for (pred, center), (G, ts, st) in zip(CELLS, all_cells(keys)):
        for j, mean in enumerate((True, False)[:G.shape[1]]):
            out[(pred, center, mean)] = (np.asarray(G[:, j]), np.asarray(ts[0, 0]), np.asarray(st[:, j]))
    return out


def _floor():
    alive, p = _theory(True, True)
    return 0.1 * float(np.min(p[alive] ** 2)) / ALPHA_P


def cell_metrics(G, ts, status) -> dict:
    """Per seed, from the Gram averaged over the last fifth of the run: the diagonal (mode energies), the fraction
    of ‖W‖² along μ (e_0), |cos| of W's top right singular vector with μ, the participation ratio (Σλ)²/Σλ² of
    F = W X Wᵀ (X uncentered) and of the features' covariance W Σx Wᵀ, and whether every run succeeded."""
    Gw = G[:, ts >= 0.8 * ts[-1]].mean(axis=1)                  # (seeds, n, n)
    X = np.diag(np.asarray(_source(True).moments().X))
    sx = np.asarray(X_DIAG)

    def pr(lam):
        lam = np.clip(lam, 0.0, None)
        return float(lam.sum() ** 2 / max((lam ** 2).sum(), 1e-300))

    tr = np.trace(Gw, axis1=1, axis2=2)
    _, V = np.linalg.eigh(Gw)
    return dict(diag=np.diagonal(Gw, axis1=1, axis2=2), norm2=tr, frac=Gw[:, 0, 0] / np.maximum(tr, 1e-300),
                cos=np.abs(V[:, 0, -1]),
                pr_F=np.array([pr(np.linalg.eigvalsh(np.sqrt(X)[:, None] * g * np.sqrt(X)[None])) for g in Gw]),
                pr_cov=np.array([pr(np.linalg.eigvalsh(np.sqrt(sx)[:, None] * g * np.sqrt(sx)[None])) for g in Gw]),
                ok=bool(np.all(status == SUCCEEDED)))


def cell_verdict(m: dict) -> str:
    """"collapsed", "mean-collapse", "mean-free" or "undecided" (criteria in the module's comments)."""
    if not m["ok"]:
        return "undecided"
    if np.all(m["norm2"] < _floor()):
        return "collapsed"
    f, se = mean_se(m["frac"])
    if f - Z * se > FRAC_HI:
        return "mean-collapse"
    if f + Z * se < FRAC_LO:
        return "mean-free"
    return "undecided"


def contrastive_term(state: State, data: Data, mean, batch) -> tuple[jax.Array, jax.Array]:
    """The implicit contrastive term, written out (docs/centering.md, Eq. C3): the centered expected update
    minus Lemma 1's, (Wpᵀ K, α_p K Wᵀ) per unit α_p with K = Wp W C1 − T C2, C1 = m mᵀ + Cov(x1)/B,
    C2 = m mᵀ + Cov(x̄)/B (T = Wa; `batch=None`: B = ∞). Independent of `Data.centered` (a check of it)."""
    X, Xp = (np.asarray(a) for a in data.matrices())
    m = np.asarray(mean)
    mm = np.outer(m, m)
    inv = 0.0 if batch is None else 1.0 / batch
    C1 = mm + (X + Xp - mm) * inv
    C2 = mm + (X - mm) * inv
    W, Wp, T = (np.asarray(a) for a in (state.W, state.Wp, state.Wa))
    K = Wp @ W @ C1 - T @ C2
    return Wp.T @ K, K @ W.T


def update_check(batch: int = CHECK_B, K: int = CHECK_K, seed: int = 0, centers=("center", "none")):
    """The SGD update (one step, lr 1, α_p = 0.5, no momentum or decay) at a random state on a mean-shifted
    anisotropic source, over K independent batches, for each center of `centers` (`CENTERS`; "center" and "none"
    at least) on the same batches.

    **Returns:** dict with the per-batch updates `center -> (dW, dWp)` (K, ...), the paired difference "center" −
    "none", the derived expectations (Lemma 1 on `centered_moments(batch)` and on `moments()`),
    `contrastive_term`'s, and the state and source."""
    centers = tuple(centers)
    if not {"center", "none"} <= set(centers) or not set(centers) <= set(CENTERS):
        raise ValueError(f"centers must hold 'center' and 'none' and be among {CENTERS}, got {centers!r}")
    rng = np.random.default_rng(seed)
    n1, n2 = 4, 3
    A = rng.standard_normal((n1, n1))
    mu = np.array([1.5, -0.5, 0.0, 0.5])
    src = Source.additive(A @ A.T / n1 + 0.2 * np.eye(n1), 0.3 * np.eye(n1), mean=mu)
    s0 = State(rng.standard_normal((n2, n1)), rng.standard_normal((n2, n2)), rng.standard_normal((n2, n1)))
    sgd = SGD(lr=1.0, lr_p=0.5)
    hyper, _ = to_flow(sgd)
    keys = jax.random.split(jax.random.PRNGKey(1000 + seed), K)
    ts0 = init_train_state(s0, Setup(batch=batch))
    data = src.moments()

    @jax.jit
    def steps(keys):
        return [jax.lax.map(lambda k, c=c: sgd_step(ts0, sgd, src, data, k, Setup(batch=batch, center=c)), keys)
                for c in centers]  # lax.map: unbatched keys compile faster than vmap's

    upd = {c: (np.asarray(ts.W) - np.asarray(ts0.W), np.asarray(ts.Wp) - np.asarray(ts0.Wp))
           for c, ts in zip(centers, steps(keys))}
    v_c = vector_field(s0, hyper, src.centered_moments(batch))
    v_u = vector_field(s0, hyper, src.moments())
    kW, kWp = contrastive_term(s0, src.moments(), src.view_mean(), batch)
    return dict(updates=upd, diff=tuple(a - b for a, b in zip(upd["center"], upd["none"])),
                centered=(np.asarray(v_c.W), np.asarray(v_c.Wp)), lemma1=(np.asarray(v_u.W), np.asarray(v_u.Wp)),
                term=(kW, hyper.alpha_p * kWp), state=s0, source=src, alpha_p=float(hyper.alpha_p))


def zscores(samples, predicted) -> np.ndarray:
    """(mean − predicted) / SE per entry, over the stacked entries of a pair of (K, ...) sample arrays."""
    return np.concatenate([((s.mean(0) - np.asarray(p)) / (s.std(0, ddof=1) / np.sqrt(len(s)))).ravel()
                           for s, p in zip(samples, predicted)])


def _fmt_set(alive):
    return "{" + ", ".join(str(j) for j in np.flatnonzero(alive)) + "}"


def fig_centering(size: str = "full", seed: int = 0):
    """Batch centering and the implicit contrastive term (docs/centering.md). (a) the averaged centered SGD update
    against Lemma 1 on the batch-centered moments, and the paired centered − uncentered difference against the
    contrastive term's closed form; (b) the mode energies of the learned-predictor runs with and without centering
    on mean-shifted data; (c) the 2 × 2 (predictor × centering) and the μ = 0 control: fraction of ‖W‖² along μ
    and the participation ratio of F. `seed` offsets the seeds of (b, c)."""
    if not jax.config.jax_enable_x64:
        raise ValueError("fig_centering needs float64: jax.config.update('jax_enable_x64', True)")
    rows: list = []
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(19, 6.4))

    # (a) the derivation at batch B = 4
    uc = update_check()
    z_c = zscores(uc["updates"]["center"], uc["centered"])
    z_u = zscores(uc["updates"]["center"], uc["lemma1"])
    d_inf = uc["source"].centered_moments(None)
    v_inf = vector_field(uc["state"], Hyper(alpha_p=uc["alpha_p"]), d_inf)
    z_inf = zscores(uc["updates"]["center"], (np.asarray(v_inf.W), np.asarray(v_inf.Wp)))
    z_k = zscores(uc["diff"], uc["term"])
    z_k0 = zscores(uc["diff"], contrastive_term(uc["state"], uc["source"].moments(), uc["source"].view_mean(), None))
    mc = np.concatenate([a.mean(0).ravel() for a in uc["updates"]["center"]])
    se = np.concatenate([(a.std(0, ddof=1) / np.sqrt(CHECK_K)).ravel() for a in uc["updates"]["center"]])
    pc = np.concatenate([np.ravel(a) for a in uc["centered"]])
    pu = np.concatenate([np.ravel(a) for a in uc["lemma1"]])
    ax_a.errorbar(pc, mc, yerr=Z * se, fmt="o", ms=4, label=f"centered SGD, mean of {CHECK_K} batches (± {Z:g} SE)")
    ax_a.plot(pu, mc, "x", color="0.5", label="control: against uncentered Lemma 1 (x axis)")
    lo, hi = min(pc.min(), pu.min()), max(pc.max(), pu.max())
    ax_a.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax_a.set(xlabel="derived: Lemma 1 on Data.centered(B, m) (entries of dW, dWp)", ylabel="measured mean update")
    ax_a.set_title(f"(a) centered SGD update, B = {CHECK_B}, mean-shifted data:\nmax |z| = {np.abs(z_c).max():.2f} "
                   f"(uncentered Lemma 1: {np.abs(z_u).max():.0f}); contrastive term (paired\ndifference) "
                   f"max |z| = {np.abs(z_k).max():.2f} (its B = ∞ form: {np.abs(z_k0).max():.0f})", fontsize=9)
    ax_a.legend(fontsize=7, loc="upper left")
    rows.append(Check(
        "Batch centering (docs/centering.md, Eq. C2): the expected centered SGD update at batch B is Lemma 1 "
        "(Eqs. 2-3) with X → (1 − 1/B)(X − m mᵀ), X' → (1 − 1/B) X' (B = 4, mean-shifted anisotropic data, "
        f"a random state, {CHECK_K} batches)",
        f"max |z| over the 21 entries of (dW, dWp) = {np.abs(z_c).max():.2f}; paired centered − uncentered "
        f"difference against the contrastive term (Eq. C3): max |z| = {np.abs(z_k).max():.2f}",
        f"both ≤ {CHECK_ZMAX:g} (z = error / batch-to-batch SE; P(max > 4) ≈ 1e-3)",
        np.abs(z_c).max() <= CHECK_ZMAX and np.abs(z_k).max() <= CHECK_ZMAX,
        f"uncentered Lemma 1: max |z| = {np.abs(z_u).max():.0f}; B = ∞ centering (no 1/B terms): "
        f"{np.abs(z_inf).max():.0f}, its contrastive term {np.abs(z_k0).max():.0f}",
        np.abs(z_u).max() <= CHECK_ZMAX or np.abs(z_inf).max() <= CHECK_ZMAX))

    # (b, c) the 2 × 2 and the μ = 0 control
    nseeds, t1 = _size(size)
    seeds = range(seed, seed + nseeds)
    allruns = centering_runs(size, seeds)
    runs = {c[:2]: r for c, r in allruns.items() if c[2]}
    met = {c[:2]: cell_metrics(*r) for c, r in allruns.items() if c[2]}
    met0 = {c[:2]: cell_metrics(*r) for c, r in allruns.items() if not c[2]}
    ver = {c: cell_verdict(m) for c, m in met.items()}
    ver0 = {c: cell_verdict(m) for c, m in met0.items()}
    floor = _floor()
    alive_u, p_u = _theory(False, True)
    alive_c, p_c = _theory(True, True)
    alive_inf, p_inf = _theory(True, True, None)  # B = ∞: for the modes 1-3 the uncentered values (μ ∥ e_0)
    for (cell, ls) in ((("learned", "none"), "--"), (("learned", "center"), "-")):
        G, ts, _ = runs[cell]
        for i in range(len(X_DIAG)):
            pm = np.sqrt(ALPHA_P * np.mean(G[:, :, i, i], axis=0))
            ax_b.semilogy(ts, pm, color=f"C{i}", ls=ls, lw=1.8,
                          label=f"mode {i}{' (μ)' if i == 0 else ''}, {'centered' if cell[1] != 'none' else 'uncentered'}")
    for i in range(len(X_DIAG)):
        for p, mk in ((p_u, "<"), (p_c, ">")):
            if p[i] > 0:
                ax_b.plot(t1 * (1.02 if mk == "<" else 1.05), p[i], mk, color=f"C{i}", ms=7, mfc="none", clip_on=False)
    ax_b.axhline(np.sqrt(ALPHA_P * floor), color="0.4", ls=":", lw=1, label="survival floor")
    ax_b.set(xlabel="flow time t", ylabel="rms over seeds of p_j = √(α_p (WᵀW)_jj)", ylim=(1e-3, 3))
    ax_b.set_title(f"(b) learned Wp, μ = {MEAN_NORM:g} e_0 (x_0 = {X_DIAG[0]}):\ndashed uncentered, solid centered "
                   f"(B = {BATCH});\nmarkers: mode theory p*_+ (◁ uncentered, ▷ Data.centered)", fontsize=9)
    ax_b.legend(fontsize=6, ncol=2, loc="lower left")

    labels, fr, prs = [], [], []
    for c in CELLS:
        labels.append(f"Wp {c[0]}\n{'centered' if c[1] != 'none' else 'uncentered'}\n[{ver[c]}]")
        fr.append(mean_se(met[c]["frac"]))
        prs.append(mean_se(met[c]["pr_F"]))
    for c in CELLS[:2]:
        labels.append(f"μ = 0:\nWp {c[0]}\n{'centered' if c[1] != 'none' else 'uncentered'}\n[{ver0[c]}]")
        fr.append(mean_se(met0[c]["frac"]))
        prs.append(mean_se(met0[c]["pr_F"]))
    xs = np.arange(len(labels))
    ax_c.bar(xs - 0.2, [f[0] for f in fr], 0.4, yerr=[Z * f[1] for f in fr], color="C3",
             label=f"fraction of ‖W‖² along μ (e_0 when μ = 0) (± {Z:g} SE)")
    ax_c2 = ax_c.twinx()
    ax_c2.bar(xs + 0.2, [p[0] for p in prs], 0.4, yerr=[Z * p[1] for p in prs], color="C0",
              label="participation ratio of F = W X Wᵀ")
    ax_c.axhline(FRAC_HI, color="C3", ls=":", lw=1)
    ax_c.axhline(FRAC_LO, color="C3", ls="--", lw=1)
    ax_c.set_xticks(xs, labels, fontsize=6.5)
    ax_c.set(ylabel="fraction of ‖W‖² along μ", ylim=(0, 1.1))
    ax_c2.set(ylabel="participation ratio of F", ylim=(0, len(X_DIAG)))
    ax_c.set_title(f"(c) the 2 × 2 and the μ = 0 control ({nseeds} seeds, last fifth of t ≤ {t1:g});\n"
                   "collapsed cells: W → 0, fractions of a vanishing W", fontsize=9)
    h1, l1 = ax_c.get_legend_handles_labels()
    h2, l2 = ax_c2.get_legend_handles_labels()
    ax_c.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")

    def desc(m):
        return (f"fraction of ‖W‖² along e_0 (μ's axis) {mean_se(m['frac'])[0]:.3f} ± {mean_se(m['frac'])[1]:.3f}, |cos(v1, μ)| "
                f"{np.mean(m['cos']):.2f}, participation ratio of F {np.mean(m['pr_F']):.2f} (of the covariance "
                f"W Σx Wᵀ {np.mean(m['pr_cov']):.2f}), surviving {_fmt_set((m['diag'] > floor).all(axis=0))}")

    ln, lc = met[("learned", "none")], met[("learned", "center")]
    sets_c = ((lc["diag"] > floor) == alive_c[None]).all(axis=1)
    sets_u = ((ln["diag"] > floor) == alive_u[None]).all(axis=1)
    frac_u = float(p_u[0] ** 2 / np.sum(p_u ** 2))
    rows.append(Check(
        "Implicit contrastive term (companion paper, THEORY.md 13: BatchNorm's zero-mean step with a predictor): "
        f"sampled BYOL (learned Wp, EMA, Euclidean) on data with mean μ = {MEAN_NORM:g} e_0, centered: the mean "
        "direction dies, W keeps the covariance modes that Lemma 1 on Data.centered(64, μ) keeps",
        f"centered: {desc(lc)}; the theory's set in {sets_c.sum()} of {len(sets_c)} seeds",
        f"mean-free (fraction + {Z:g} SE < {FRAC_LO}); surviving {_fmt_set(alive_c)} (mode theory on the centered "
        "moments)", ver[("learned", "center")] == "mean-free" and bool(sets_c.all()),
        f"no centering: {desc(ln)} (uncentered theory: surviving {_fmt_set(alive_u)}, fraction {frac_u:.2f}; its "
        f"set in {sets_u.sum()} of {len(sets_u)} seeds)",
        ver[("learned", "none")] == "mean-free" and bool(((ln["diag"] > floor) == alive_c[None]).all())))
    li, lic = met[("identity", "none")], met[("identity", "center")]
    rows.append(Check(
        "The contrastive term needs the predictor (companion paper: 'the combination of BatchNorm and a predictor'; "
        "docs/centering.md: with Wp = I and T → W the term is W X'/B, no mean part): sampled BYOL with Wp = I on the "
        "same data collapses with centering as without (App. D.3)",
        f"Wp = I, centered: ‖W‖² ≤ {lic['norm2'].max():.1e} in every seed [{ver[('identity', 'center')]}]; "
        f"uncentered ‖W‖² ≤ {li['norm2'].max():.1e} [{ver[('identity', 'none')]}]",
        f"collapsed (every seed's ‖W‖² < floor {floor:.3f})",
        ver[("identity", "center")] == "collapsed" and ver[("identity", "none")] == "collapsed",
        f"learned Wp, centered: ‖W‖² ≥ {lc['norm2'].min():.2f} [{ver[('learned', 'center')]}]",
        ver[("learned", "center")] == "collapsed"))
    l0n, l0c = met0[("learned", "none")], met0[("learned", "center")]
    same0 = bool(np.array_equal((l0n["diag"] > floor).all(axis=0), (l0c["diag"] > floor).all(axis=0)))
    pc_ = [mean_se(np.sqrt(ALPHA_P * lc["diag"][:, i])) for i in range(len(X_DIAG))]

    def flow_agrees(alive, p):  # surviving modes within Z SE + 0.02 of p*_+; dead ones below the floor in every seed
        return lc["ok"] and all(abs(pc_[i][0] - p[i]) <= Z * pc_[i][1] + 0.02 if alive[i]
                                else bool(np.all(lc["diag"][:, i] < floor)) for i in range(len(X_DIAG)))

    rows.append(Check(
        "The centered flow (Lemma 1 on Data.centered(B, μ), through the mode theory A3) predicts the sampled "
        "centered runs' surviving p_j = √(α_p (WᵀW)_jj) (learned Wp, μ = 2 e_0, B = 64); this criterion does not "
        "resolve the (1 − 1/B) factor (panel a does)",
        ", ".join(f"p_{i} = {pc_[i][0]:.4f} ± {pc_[i][1]:.4f}" for i in range(len(X_DIAG)))
        + "; B = ∞ centering's p*_+ = " + ", ".join(f"{p:.4f}" for p in p_inf)
        + f" {'also passes' if flow_agrees(alive_inf, p_inf) else 'fails'} it",
        ", ".join(f"{p:.4f}" for p in p_c) + f": surviving modes within {Z:g} SE + 0.02 (minibatch bias; "
        "docs/anisotropic_modes.md's criterion), dead ones (0) below the floor in every seed",
        flow_agrees(alive_c, p_c),
        "the uncentered flow's p*_+ = " + ", ".join(f"{p:.4f}" for p in p_u), flow_agrees(alive_u, p_u)))
    rows.append(Finding(
        "Batch centering on zero-mean data (μ = 0, learned Wp): does the implicit contrastive term prevent "
        "collapse in the linear model?",
        f"μ = 0: uncentered {desc(l0n)}; centered {desc(l0c)}; surviving sets {'equal' if same0 else 'DIFFER'}",
        "BatchNorm with the predictor creates an implicit contrastive term (the companion paper reads it as why BYOL "
        "does not collapse; THEORY.md 13)",
        "in the linear model the learned predictor alone keeps the modes {j : η < η_c(j)} (DirectPred paper); "
        "centering only rescales X, X' by (1 − 1/B) when μ = 0, and with Wp = I it does not prevent collapse. "
        "What the term does here is remove the mean direction: an exact covariance operator on the driving term "
        "when Wp is a scalar on W's column space and T ∝ W (docs/centering.md), not a collapse preventer"))

    fig.suptitle("Batch centering (BatchNorm's zero-mean step) + predictor: the implicit contrastive term removes "
                 "the mean direction m mᵀ from Lemma 1's moments", fontsize=11)
    note(fig, f"Chosen: Σx = diag{X_DIAG}, Σn = {XP} I, μ = {MEAN_NORM:g} e_0; SGD lr = {LR}, batch {BATCH}, "
              f"α_p = {ALPHA_P:g}, η = {ETA}, β = {BETA} (from_flow), one view, Euclidean loss, EMA, center 'center' "
              "(= 'center-detach' for this loss); W(0) ~ N(0, 1) entries, Wp(0) = 0.5 I + N(0, 0.1²) entries, Wa(0) = W(0). (a) n1 = 4, "
              "n2 = 3, random state, lr 1, α_p = 0.5.")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig, rows
