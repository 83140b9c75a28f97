"""The paper's real-network claims, decided on seeded runs of one preset (THEORY.md sections 11-12).

Runs (`byoldyn train` directories) are grouped by method: their config without the seed. A claim compares
one measurement between groups, or between two steps of one group, with seeds paired (the same seed gives
the same initialisation, augmentations and batch order), at one training step for every run. Its interval
is the 95 % Student-t interval of the mean paired difference over the n seeds both sides have,
mean ± t(0.975, n - 1) sd / √n; no claim is decided on fewer than 2 seeds. The decision rules are fixed in
`CLAIMS` below, written before the runs were read:

- Fig. 2 asymmetry: ‖Wp - Wpᵀ‖/‖Wp‖ falls from the first record to `final`: holds if the interval of
  (last - first) lies below 0.
- Fig. 2 alignment: the mean over the top 10 eigenvectors u_j of F̂ of cos(Wp u_j, u_j) rises: holds if
  the interval of (last - first) lies above 0.
- Fig. 2 p_j ∝ √s_j: the slope of log p_j against log s_j over the top 10 modes (p_j the eigenvalues of
  sym(Wp), s_j those of F̂, both decreasing; p_j > 0): holds if the interval of the slope contains 1/2.
- Table 3: symmetric Wp with EMA beats symmetric Wp without EMA (learning-curve kNN): holds if the
  interval of (EMA - no EMA) lies above 0.
- Theorem 2: without a predictor, and without stop-gradient, the projections collapse: the batch spread
  `z_std` of the normalized projections, as a ratio to the learned predictor's at the same step and seed
  (log ratio paired): holds if the interval of the ratio lies below 1/2.
- Section 3.3: a predictor learning rate α_p > 1 lets symmetric Wp work without EMA (the paper's Table 3
  failure is at α_p = 1): holds if the interval of (kNN at α_p = 10 - kNN at α_p = 1), both without EMA,
  lies above 0.
- Table 8: DirectPred is at least as good as the learned linear predictor (learning-curve kNN): holds if
  the interval of (DirectPred - learned) lies above 0; "comparable" if it contains 0.

- Companion paper (arXiv 2010.00578), BN and the predictor: "in BYOL, the combination of BatchNorm and a
  predictor network creates an implicit contrastive term" (BN's zero-mean step; counter-evidence: Richemond et
  al. 2020 train BYOL with GroupNorm + weight standardisation). Two contrasts with the learned Wp at step
  1,000, `--head-norm` changed alone (byoldyn.nets.heads; with the linear Wp it is the projector's hidden BN):
  no normalisation degrades BYOL: holds if the interval of (none - BN) lies below 0; centering alone (the
  batch mean differentiated, no division by the std) does BN's work: holds if the interval of
  (center - BN) lies inside (-δ, +δ), "differs" if it lies wholly below or above 0.
- Companion paper: "reinitializing the predictor every few epochs doesn't hurt BYOL performance": the
  predictor reset every 390 steps (one epoch of the 50,000 CIFAR-10 images at batch 128) against the learned
  Wp, step 1,000 (resets at 390 and 780): holds if the interval of (reset - learned) lies above -δ, "hurts"
  if it lies below 0.

- What sets the learned predictor's spectrum (beyond the paper; docs/anisotropic_modes.md): along the top 10
  eigenvectors u_j of F̂, p_j = u_jᵀ Wp u_j against three candidates, each a least-squares line of log p_j on
  log candidate_j per seed: s_j (Eq. 18, DirectPred: slope 1/2), the two-view ratio r_j = u_jᵀ E[z_target
  z_onlineᵀ] u_j / s_j (the mode theory's fixed point p*_+ = τ/κ_j at η = 0, A3: slope 1), the Gram g_j =
  u_jᵀ W Wᵀ u_j of the projector's last layer (Theorem 1's invariant p_j = √(α_p g_j), A4: slope 1/2). A
  candidate explains p_j if the interval of its slope contains the predicted slope and its R² averaged over
  seeds is at least `R2_MIN` = 0.9 (it accounts for 90 % of the variance of log p_j over the 10 modes); the
  table also names the candidate with the largest mean R² (the best line, whatever its slope). Control: the
  same fit with the candidate's modes in reverse order (a mode-by-mode pairing removed), which must not explain
  p_j. Only slopes are compared: the intercept is free (the cosine loss leaves p's scale free, docs/cosine_loss.md
  C6). These rows need logs that record the two-view ratio (runs from the instrumentation of
  `byoldyn.nets.instrument` on).

δ = 2 kNN points, fixed with these rules before any of their runs was read: about a fifth of what the
learned runs gain from step 0 to step 1,000 of the learning curve (29.6 → 38.9 %), and about twice the sd of
the paired differences between methods seen so far at step 1,000 (Table 8: 1.05). With 3 seeds the interval's
half-width at that sd is about 2.6 points, so an equivalence may stay "not resolved" on 3 seeds.

The learning-curve kNN (`RUN/curve.json`: a random 10,000-image bank of the training split and 2,000 test
images, k = 200, T = 0.1) is the one accuracy every run has at every 250 steps, so the contrasts use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from .curves import load_curve
from .training import aligned_fraction, describe, load_run, loglog_fit, p_slope

__all__ = ["Run", "load_runs", "method", "interval", "measure", "CLAIMS", "MARGIN", "R2_MIN", "CANDIDATES", "decide",
           "claims_table",
           "seeds_table"]

#: the config fields that do not define a method (a run's identity within its group)
_NOT_METHOD = ("seed",)
#: config fields of older logs under their names of today (`byoldyn.nets.config.Config.from_dict`)
_RENAMED = {"predictor_wd": "wd_p"}
#: fields that older logs lack, at their value of today's default (left out of the method key there)
_ADDED = {"head_norm": "bn", "predictor_reset": None}
#: the equivalence / non-inferiority margin δ of the companion paper's claims, kNN points (see above)
MARGIN = 2.0
#: the least mean R² of a candidate that explains the predictor's spectrum (see above)
R2_MIN = 0.9
#: what `measure` fits p_j = u_jᵀ Wp u_j against, over the top 10 modes (the log's variable names)
CANDIDATES = ("s", "two_view_ratio", "gram")


@dataclass
class Run:
    """One `byoldyn train` run: its directory name, seed, config, log (or None), curve and eval."""

    name: str
    seed: int
    config: dict
    log: object
    curve: list = field(default_factory=list)
    eval: dict = field(default_factory=dict)


def load_runs(dirs, loaded: dict | None = None) -> list[Run]:
    """The runs of `dirs` that have a training log (eval-only runs, the baselines, are left out); `loaded`
    (name -> `load_run`'s pair) saves reading the logs again."""
    out = []
    for d in dirs:
        ds, ev = (loaded or {}).get(Path(d).resolve().name) or load_run(d)
        if ds is None:
            continue
        c = json.loads(ds.attrs["config"])
        out.append(Run(Path(d).resolve().name, int(c.get("seed", 0)), c, ds, load_curve(d), ev))
    return out


def method(run: Run) -> str:
    """The key of a run's group: its config without the seed, in today's names, as canonical JSON."""
    c = {_RENAMED.get(k, k): v for k, v in run.config.items() if k not in _NOT_METHOD}
    c = {k: v for k, v in c.items() if k not in _ADDED or v != _ADDED[k]}
    c["predictor"] = _predictor(c)
    return json.dumps(c, sort_keys=True)


def _predictor(c: dict) -> str:
    """The predictor of config `c` in today's names (older logs: linear, none; `symmetric` as a flag)."""
    pred = {"linear": "learned", "none": "identity"}.get(c["predictor"], c["predictor"])
    return "symmetric" if pred == "learned" and c.get("symmetric") else pred


def interval(x, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the Student-t interval of the mean of the finite values of `x`."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        m = float(x[0]) if n else float("nan")
        return m, float("nan"), float("nan"), n
    h = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return float(x.mean()), float(x.mean() - h), float(x.mean() + h), n


def measure(run: Run, what: str, step: int) -> float:
    """`what` of `run` at training step `step` (NaN when the run has no record there): `knn` (the
    learning curve, fraction), `z_std`, `effective_rank`, `asymmetry`, `alignment` (top 10), `p_slope`, or
    `fit:<candidate>[:reversed][:r2]`, the slope (R² with `r2`) of the line of log p_rayleigh on log candidate (one of `CANDIDATES`) over
    the top 10 modes (`reversed`: the candidate's modes in reverse order, the control). `step = 0` in a log
    means its first record."""
    if what == "knn":
        return next((float(q["knn_acc"]) for q in run.curve if q["step"] == step), float("nan"))
    steps = run.log.step.values
    t = 0 if step == 0 else int(np.searchsorted(steps, step))
    if t >= len(steps) or (step and steps[t] != step):
        return float("nan")
    if what == "alignment":
        return float(aligned_fraction(run.log)[t])
    if what.startswith("fit:"):
        parts = what.split(":")
        cand = parts[1]
        if cand not in run.log or "p_rayleigh" not in run.log:
            return float("nan")
        x = run.log[cand].values[t][:10]
        slope, _, r2 = loglog_fit(x[::-1] if "reversed" in parts else x, run.log.p_rayleigh.values[t][:10], 10)
        return r2 if "r2" in parts else slope
    if what == "p_slope":  # the spectrum of sym(Wp): every log has it (older ones lack u_jᵀ Wp u_j)
        return p_slope(run.log.s.values[t], run.log.p.values[t])
    return float(run.log[what].values[t])


def _is(c: dict, predictor: str, ema: bool = True, stop_grad: bool = True, alpha_p: float | None = None,
        head_norm: str = "bn", predictor_reset: int | None = None) -> bool:
    """Whether config `c` is `predictor` with (or without) EMA and stop-gradient, at `alpha_p` (None: any), with
    the heads' normalisation `head_norm` and the predictor reset `predictor_reset` (older logs: bn, None)."""
    return (_predictor(c) == predictor and (c["ema"] > 0) == ema and c.get("stop_grad", True) == stop_grad
            and (alpha_p is None or float(c.get("alpha_p", 1.0)) == alpha_p)
            and c.get("head_norm", "bn") == head_norm and c.get("predictor_reset") == predictor_reset)


#: The claims: each names its groups (config predicates: `_is`'s arguments, a tuple or a dict), what is
#: measured, at which step (`final`: the learned group's last common record), how the paired values combine,
#: the rule (and `margin` δ where it has one), the paper's numbers, and for the companion paper's claims a negative
#: `control`: the same rule on another contrast (`a` replaced), which must not hold.
CLAIMS = (
    dict(key="fig2-asymmetry", claim="Fig. 2: asymmetry ‖Wp − Wpᵀ‖/‖Wp‖ of the learned Wp falls",
         a=("learned",), b=None, what="asymmetry", at="final", combine="last-first", rule="below", threshold=0.0,
         paper="falls to ≈ 0 (Fig. 2, left; with weight decay)"),
    dict(key="fig2-alignment", claim="Fig. 2: eigenvectors of F̂ align with Wp's (mean cos, top 10 modes)",
         a=("learned",), b=None, what="alignment", at="final", combine="last-first", rule="above", threshold=0.0,
         paper="rises to ≈ 1 (Fig. 2, right)"),
    dict(key="fig2-sqrt", claim="Fig. 2 / Eq. 18: p_j ∝ √s_j (slope of log p_j on log s_j, top 10 modes)",
         a=("learned",), b=None, what="p_slope", at="final", combine="value", rule="contains", threshold=0.5,
         paper="slope 1/2 (DirectPred sets p_j = √s_j)"),
    dict(key="table3", claim="Table 3: symmetric Wp, EMA beats no EMA (kNN %)",
         a=("symmetric",), b=("symmetric", False), what="knn", at=1000, combine="a-b", rule="above", threshold=0.0,
         paper="75.09 ± 0.48 vs 36.62 ± 1.85 (STL-10, 100 epochs): +38.5"),
    dict(key="thm2-nopred", claim="Theorem 2: no predictor collapses (z_std / learned's)",
         a=("identity",), b=("learned",), what="z_std", at=500, combine="a/b", rule="below", threshold=0.5,
         paper="collapse (Theorem 2; BYOL without predictor)"),
    dict(key="thm2-nostopgrad", claim="Theorem 2: no stop-gradient collapses (z_std / learned's)",
         a=("learned", False, False), b=("learned",), what="z_std", at=500, combine="a/b", rule="below",
         threshold=0.5, paper="collapse (Theorem 2)"),
    dict(key="sec33-alpha", claim="Section 3.3: α_p > 1 lets symmetric Wp work without EMA (kNN %, α_p = 10 vs 1)",
         a=("symmetric", False, True, 10.0), b=("symmetric", False, True, 1.0), what="knn", at=1000, combine="a-b",
         rule="above", threshold=0.0, paper="Table 3 is at α_p = 1 (no EMA 36.62); α_p > 1 makes it work (Fig. 6)"),
    dict(key="table8", claim="Table 8: DirectPred vs the learned linear Wp (kNN %)",
         a=("directpred",), b=("learned",), what="knn", at=1000, combine="a-b", rule="above", threshold=0.0,
         paper="85.21 ± 0.23 vs 84.49 ± 0.20 (CIFAR-10, 100 epochs): +0.72"),
    dict(key="bn-none", claim="arXiv 2010.00578: without BN in the heads BYOL degrades (kNN %, none − BN)",
         a=dict(predictor="learned", head_norm="none"), b=dict(predictor="learned"), what="knn", at=1000,
         combine="a-b", rule="below", threshold=0.0,
         control=dict(a=dict(predictor="learned", head_norm="center"), label="centering − BN"),
         paper="BN (its zero-mean step) + predictor create an implicit contrastive term: without it BYOL "
         "degrades / collapses (but Richemond et al. 2020: GroupNorm + weight standardisation work)"),
    dict(key="bn-center", claim="arXiv 2010.00578: the zero-mean step alone does BN's work (kNN %, centering − BN)",
         a=dict(predictor="learned", head_norm="center"), b=dict(predictor="learned"), what="knn", at=1000,
         combine="a-b", rule="within", threshold=0.0, margin=MARGIN,
         control=dict(a=dict(predictor="learned", head_norm="none"), label="no normalisation − BN"),
         paper="the zero-mean step of BN is what creates the implicit contrastive term: comparable to BN"),
    dict(key="predictor-reset", claim="arXiv 2010.00578: reinitializing the predictor every epoch doesn't hurt "
         "(kNN %, reset every 390 steps − learned)",
         a=dict(predictor="learned", predictor_reset=390), b=dict(predictor="learned"), what="knn", at=1000,
         combine="a-b", rule="not-below", threshold=0.0, margin=MARGIN,
         control=dict(a=dict(predictor="learned", head_norm="none"), label="no normalisation − BN"),
         paper="\"Reinitializing the predictor every few epochs doesn't hurt BYOL performance\""),
    *(dict(key=f"p-{cand}", claim=f"What sets p_j (top 10 modes along u_j): {label}", a=("learned",), b=None,
           what=f"fit:{cand}", need="two_view_ratio", candidate=name, at="final", combine="fit", rule="explains", threshold=slope,
           control=dict(what=f"fit:{cand}:reversed", label=f"{short} paired in reverse mode order"),
           paper=paper)
      for cand, label, short, name, slope, paper in (
          ("s", "p_j ∝ s_j^(1/2), F̂'s eigenvalue", "s_j", "s_j (F̂'s eigenvalue)", 0.5,
           "Eq. 18 (isotropic modes; DirectPred sets it)"),
          ("two_view_ratio", "p_j = r_j, the two-view ratio u_jᵀ E[z_target z_onlineᵀ] u_j / s_j", "r_j",
           "r_j (the two-view ratio)", 1.0, "anisotropic modes A3: p*_+ = τ/κ_j at η = 0 (beyond the paper)"),
          ("gram", "p_j ∝ g_j^(1/2), the Gram u_jᵀ W Wᵀ u_j of the projector's last layer", "g_j",
           "g_j (the projector's Gram)", 0.5,
           "Theorem 1 / A4: p_j = √(α_p g_j) on the invariant manifold (beyond the paper)"))),
)


def _group(runs, spec, need: str | None = None) -> dict[int, Run]:
    """seed -> run of the one method that matches `spec` (the most seeds if several do), among the runs whose
    log records `need` (when given); of two runs with one seed (a rerun), the one with the longer log."""
    groups: dict[str, dict[int, Run]] = {}
    for r in runs:
        if need is not None and need not in r.log:
            continue
        if _is(r.config, **spec) if isinstance(spec, dict) else _is(r.config, *spec):
            g = groups.setdefault(method(r), {})
            if r.seed not in g or r.log.sizes["step"] > g[r.seed].log.sizes["step"]:
                g[r.seed] = r
    return max(groups.values(), key=len) if groups else {}


def decide(runs, c: dict) -> dict:
    """The verdict of claim `c` (one of `CLAIMS`) on `runs`: step, per-seed values, interval, verdict."""
    a = _group(runs, c["a"], c.get("need"))
    b = _group(runs, c["b"], c.get("need")) if c["b"] else None
    seeds = sorted(set(a) & set(b)) if b is not None else sorted(a)
    step = c["at"]
    if step == "final":
        step = min((int(a[s].log.step.values[-1]) for s in seeds), default=0)
    scale = 100.0 if c["what"] == "knn" else 1.0
    va = np.array([measure(a[s], c["what"], step) for s in seeds]) * scale
    vb = np.array([measure(b[s], c["what"], step) for s in seeds]) * scale if b is not None else None
    v0 = np.array([measure(a[s], c["what"], 0) for s in seeds]) * scale
    r2 = np.array([measure(a[s], c["what"] + ":r2", step) for s in seeds]) if c["combine"] == "fit" else None
    if c["combine"] == "last-first":
        d = va - v0
    elif c["combine"] in ("value", "fit"):
        d = va
    elif c["combine"] == "a-b":
        d = va - vb
    else:  # a/b: the interval of the log ratio, mapped back
        d = np.log(va / vb)
    m, lo, hi, n = interval(d)
    if c["combine"] == "a/b":
        m, lo, hi = np.exp(m), np.exp(lo), np.exp(hi)
    th = c["threshold"]
    if n < 2 or not np.isfinite([lo, hi]).all():
        verdict = f"undecided ({n} seed{'s' if n != 1 else ''})"
    elif c["rule"] == "explains":  # the slope's interval contains the prediction and the mean R² >= R2_MIN
        inside, fits = lo <= th <= hi, np.nanmean(r2) >= R2_MIN
        verdict = ("explains" if inside and fits else "does not explain (" + ", ".join(
            ([] if inside else [f"slope {'above' if lo > th else 'below'} {th:g}"])
            + ([] if fits else [f"R² {np.nanmean(r2):.2f} < {R2_MIN:g}"])) + ")")
    elif c["rule"] == "contains":
        verdict = "holds" if lo <= th <= hi else f"differs ({'above' if lo > th else 'below'} {th:g})"
    elif c["rule"] == "within":  # equivalence: the interval inside (-δ, +δ)
        dm = c["margin"]
        verdict = (f"holds (within ±{dm:g})" if -dm < lo and hi < dm else
                   f"differs ({'below' if hi < th else 'above'} {th:g})" if hi < th or lo > th else "not resolved")
    elif c["rule"] == "not-below":  # non-inferiority: the interval above -δ
        dm = c["margin"]
        verdict = (f"holds (above −{dm:g})" if lo > th - dm else "hurts (below 0)" if hi < th else "not resolved")
    elif c["rule"] == "above":
        verdict = "holds" if lo > th else ("reversed" if hi < th else "comparable (interval contains 0)"
                                            if c["key"] == "table8" else "not resolved")
    else:
        verdict = "holds" if hi < th else ("does not hold" if lo > th else "not resolved")
    control = None
    if c.get("control"):  # the same rule on another contrast, which must not hold
        ctl = {**c, **c["control"], "control": None}
        control = {**decide(runs, ctl), "label": c["control"]["label"]}
    return dict(key=c["key"], claim=c["claim"], paper=c["paper"], step=step, seeds=seeds, a=va, b=vb, first=v0,
                mean=m, lower=lo, upper=hi, n=n, verdict=verdict, combine=c["combine"], control=control, r2=r2)


def _ms(x, f=".1f") -> str:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return "–"
    return f"{x.mean():{f}} ± {x.std(ddof=1):{f}}" if len(x) > 1 else f"{x[0]:{f}}"


def claims_table(runs) -> str:
    """Markdown: one row per claim of `CLAIMS` with the paper's number, the measured values (mean ± sd over
    seeds), the 95 % interval of the deciding quantity and the verdict."""
    rows = ["| claim | paper | step | seeds | measured (mean ± sd) | deciding quantity: mean [95 % interval] "
            "| verdict | negative control |", "|---|---|---|---|---|---|---|---|"]
    fits: list[tuple[float, str, int]] = []
    for c in CLAIMS:
        r = decide(runs, c)
        f = ".1f" if c["what"] == "knn" else ".3f"
        if r["combine"] == "last-first":
            got = f"first record {_ms(r['first'], f)} → {_ms(r['a'], f)}"
            q = "last − first"
        elif r["combine"] == "value":
            got = f"first record {_ms(r['first'], '.2f')}; at the end {_ms(r['a'], '.2f')}"
            q = "slope"
        elif r["combine"] == "fit":
            got = f"slope {_ms(r['a'], '.2f')}, R² {_ms(r['r2'], '.2f')}"
            q = "slope"
        else:
            got = f"{_ms(r['a'], f)} vs {_ms(r['b'], f)}"
            q = "ratio" if r["combine"] == "a/b" else "difference"
        iv = f"{q} {r['mean']:{f}} " + (f"[{r['lower']:{f}}, {r['upper']:{f}}]" if np.isfinite(r["lower"]) else
                                         "(no interval)")
        ctl = r["control"]
        ctl = "–" if ctl is None else f"{ctl['label']}: no runs yet" if ctl["n"] == 0 else (
            f"{ctl['label']}, the same rule: {ctl['mean']:{f}} "
                                       + (f"[{ctl['lower']:{f}}, {ctl['upper']:{f}}]" if np.isfinite(ctl["lower"])
                                          else "(no interval)") + f" → {ctl['verdict']}"
                                       + (" (**it must not hold**)" if ctl["verdict"].startswith(("holds", "explains"))
                                          else ""))
        rows.append(f"| {r['claim']} | {r['paper']} | {r['step']} | {', '.join(map(str, r['seeds'])) or '–'} | "
                    f"{got} | {iv} | **{r['verdict']}** | {ctl} |")
        if r["combine"] == "fit" and r["n"]:
            fits.append((float(np.nanmean(r["r2"])), c["candidate"], r["n"]))
    best = ("\nThe candidate whose log-log line fits p_j best (largest mean R², whatever its slope; "
            + f"{fits[0][2]} seed{'s' if fits[0][2] != 1 else ''}): {max(fits)[1]} (R² {max(fits)[0]:.2f}).\n"
            if fits else "")
    return "\n".join(rows) + "\n" + best


def seeds_table(runs, baseline_knn: float | None = None) -> str:
    """Markdown: the final evaluation (eval.json) of every seed of each method that has one, mean ± sd,
    and the kNN margin over `baseline_knn` (%, raw pixels on the same protocol) with its 95 % interval; one row
    per method and evaluated step (a method rerun to an earlier step is its own row)."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        if "knn_acc" in r.eval:
            groups.setdefault((method(r), int(r.eval.get("step", -1))), []).append(r)
    rows = ["| method | step | seeds | kNN % per seed | kNN % mean ± sd | probe % mean ± sd | kNN − raw pixels "
            "[95 % interval] |", "|---|---|---|---|---|---|---|"]
    for rs in groups.values():
        rs = sorted(rs, key=lambda r: r.seed)
        knn = np.array([100 * r.eval["knn_acc"] for r in rs])
        lin = np.array([100 * r.eval.get("linear_acc", np.nan) for r in rs])
        margin = "–"
        if baseline_knn is not None:
            m, lo, hi, _ = interval(knn - baseline_knn)
            margin = f"{m:+.1f}" + (f" [{lo:+.1f}, {hi:+.1f}]" if np.isfinite(lo) else "")
        steps = sorted({int(r.eval.get("step", -1)) for r in rs})
        rows.append(f"| {describe(rs[0].log)} | {', '.join(map(str, steps))} | {', '.join(str(r.seed) for r in rs)} | "
                    f"{' / '.join(f'{k:.1f}' for k in knn)} | {_ms(knn)} | {_ms(lin)} | {margin} |")
    return "\n".join(rows) + "\n"
