"""The decision rules of the real-network claims (byoldyn.figures.net_claims) on synthetic runs whose
answers are known: Student-t intervals by hand, slopes of exact power laws, paired seeds, verdicts."""

import json

import numpy as np
import pytest
import xarray as xr

from byoldyn.figures import net_claims as nc

T2 = 0.95 * np.sqrt(2 / (4 * 0.975 * 0.025))  # t(0.975, 2) in closed form (df = 2: t = (2u - 1) √(2 / 4u(1 - u)))


def log(steps, asym, align, s, p, z):
    """A training log with records at `steps` (per-mode arrays given per record)."""
    m = np.asarray(s).shape[-1]
    ds = xr.Dataset({"asymmetry": ("step", asym), "z_std": ("step", z), "effective_rank": ("step", np.ones(len(steps))),
                     "alignment": (("step", "mode"), np.asarray(align, float) * np.ones((len(steps), m))),
                     "s": (("step", "mode"), s), "p": (("step", "mode"), p)}, coords={"step": steps})
    return ds


def run(seed, predictor="learned", ema=0.99, stop_grad=True, knn=None, z=(0.03, 0.03), asym=(0.6, 0.1),
        align=(0.4, 0.9), slope=0.5, ev=None, alpha_p=10.0, **extra):
    c = dict(predictor=predictor, ema=ema, stop_grad=stop_grad, symmetric=False, lr=0.2, seed=seed, alpha_p=alpha_p,
             **extra)
    s = np.geomspace(1.0, 1e-3, 12)
    steps = [50, 500, 1000]
    ds = log(steps, [asym[0], asym[1], asym[1]], [[align[0]], [align[1]], [align[1]]], np.tile(s, (3, 1)),
             np.tile(2.0 * s ** slope, (3, 1)), [z[0], z[1], z[1]])
    ds.attrs["config"] = json.dumps(c)
    curve = [{"step": t, "knn_acc": a} for t, a in (knn or {}).items()]
    return nc.Run(f"{predictor}-s{seed}", seed, c, ds, curve, ev or {})


def test_interval_is_student_t():
    m, lo, hi, n = nc.interval([1.0, 2.0, 3.0])
    assert (m, n) == (2.0, 3)
    assert lo == pytest.approx(2.0 - T2 / np.sqrt(3), rel=1e-12) and hi == pytest.approx(2.0 + T2 / np.sqrt(3))
    assert np.isnan(nc.interval([1.0])[1]) and nc.interval([1.0, np.nan])[3] == 1


def test_p_slope_of_an_exact_power_law():
    from byoldyn.figures.training import p_fit, p_slope

    s = np.geomspace(1.0, 1e-3, 12)
    assert p_slope(s, 2.0 * s ** 0.37) == pytest.approx(0.37, abs=1e-12)
    assert p_fit(s, 2.0 * s ** 0.37)[1] == pytest.approx(np.log(2.0), abs=1e-12)
    p = 2.0 * s ** 0.37
    p[[1, 11]] = [-1.0, 5.0]  # a negative p_j is left out, and so is any mode below the top 10
    assert p_slope(s, p) == pytest.approx(0.37, abs=1e-12)
    assert np.isnan(p_slope(s, -p)) and nc.measure(run(0, slope=0.37), "p_slope", 1000) == pytest.approx(0.37)


def test_measure_at_steps_and_missing_records():
    r = run(0, knn={0: 0.3, 1000: 0.41})
    assert nc.measure(r, "knn", 1000) == 0.41 and np.isnan(nc.measure(r, "knn", 250))
    assert nc.measure(r, "asymmetry", 0) == 0.6 and nc.measure(r, "asymmetry", 500) == 0.1
    assert np.isnan(nc.measure(r, "z_std", 750)) and np.isnan(nc.measure(r, "z_std", 4000))


TABLE8 = next(c for c in nc.CLAIMS if c["key"] == "table8")


def test_contrast_pairs_seeds_and_decides():
    base = {s: 0.40 + 0.01 * s for s in range(3)}
    learned = [run(s, knn={1000: base[s]}) for s in range(3)]
    # DirectPred 1, 2, 3 points above the learned Wp of the same seed: interval 2 ± T2/√3 contains 0
    dp = [run(s, "directpred", knn={1000: base[s] + 0.01 * (s + 1)}) for s in range(3)]
    r = nc.decide(learned + dp, next(c for c in nc.CLAIMS if c["key"] == "table8"))
    assert r["seeds"] == [0, 1, 2] and r["mean"] == pytest.approx(2.0)
    assert r["lower"] == pytest.approx(2.0 - T2 / np.sqrt(3)) and r["verdict"].startswith("comparable")
    # 2.0, 2.1, 2.2 points: the interval lies above 0
    dp = [run(s, "directpred", knn={1000: base[s] + 0.02 + 0.001 * s}) for s in range(3)]
    assert nc.decide(learned + dp, TABLE8)["verdict"] == "holds"
    # pairing by seed matters: seed 2 missing on one side leaves 2 seeds
    assert nc.decide(learned[:2] + dp, TABLE8)["n"] == 2
    # 2 points below: reversed
    dp = [run(s, "directpred", knn={1000: base[s] - 0.02 - 0.001 * s}) for s in range(3)]
    assert nc.decide(learned + dp, TABLE8)["verdict"] == "reversed"


def test_collapse_is_a_ratio_below_one_half():
    claim = next(c for c in nc.CLAIMS if c["key"] == "thm2-nopred")
    learned = [run(s, z=(0.03, 0.03 + 0.001 * s)) for s in range(3)]
    collapsed = [run(s, "identity", z=(0.03, 0.003)) for s in range(3)]
    r = nc.decide(learned + collapsed, claim)
    assert r["step"] == 500 and r["verdict"] == "holds" and r["upper"] < 0.5 and 0.09 < r["mean"] < 0.1
    healthy = [run(s, "identity", z=(0.03, 0.03)) for s in range(3)]
    assert nc.decide(learned + healthy, claim)["verdict"] == "does not hold"
    assert nc.decide(learned, claim)["verdict"].startswith("undecided")  # no such runs: no verdict


def test_alpha_p_claim_pairs_the_two_predictor_rates_without_ema():
    claim = next(c for c in nc.CLAIMS if c["key"] == "sec33-alpha")
    fast = [run(s, "symmetric", ema=0.0, alpha_p=10.0, knn={1000: 0.40 + 0.01 * s}) for s in range(3)]
    slow = [run(s, "symmetric", ema=0.0, alpha_p=1.0, knn={1000: 0.30 + 0.011 * s}) for s in range(2)]
    ema = [run(s, "symmetric", alpha_p=1.0, knn={1000: 0.0}) for s in range(3)]  # with EMA: in neither group
    r = nc.decide(fast + slow + ema, claim)
    assert r["seeds"] == [0, 1] and r["mean"] == pytest.approx(9.95) and r["verdict"] == "holds"
    same = [run(s, "symmetric", ema=0.0, alpha_p=1.0, knn={1000: 0.40 + 0.01 * s + 0.002 * (-1) ** s})
            for s in range(3)]
    assert nc.decide(fast + same, claim)["verdict"] == "not resolved"
    # Table 3's no-EMA side is the method with the most seeds (here α_p = 10, three seeds)
    t3 = nc.decide(fast + slow + [run(s, "symmetric", knn={1000: 0.45}) for s in range(3)],
                   next(c for c in nc.CLAIMS if c["key"] == "table3"))
    assert t3["n"] == 3 and t3["mean"] == pytest.approx(4.0)


def test_fig2_rules_and_their_controls():
    learned = [run(s, asym=(0.6, 0.1 + 0.01 * s), align=(0.4, 0.9 + 0.01 * s), slope=0.5 + 0.01 * (s - 1))
               for s in range(3)]
    got = {c["key"]: nc.decide(learned, c) for c in nc.CLAIMS if c["key"].startswith("fig2")}
    assert got["fig2-asymmetry"]["step"] == 1000 and got["fig2-asymmetry"]["verdict"] == "holds"
    assert got["fig2-alignment"]["mean"] == pytest.approx(0.51) and got["fig2-alignment"]["verdict"] == "holds"
    assert got["fig2-sqrt"]["mean"] == pytest.approx(0.5) and got["fig2-sqrt"]["verdict"] == "holds"
    # the controls: nothing changes (asymmetry, alignment), a slope of 0.2
    flat = [run(s, asym=(0.6, 0.6 + 0.01 * (s - 1)), align=(0.4, 0.4 + 0.01 * (s - 1)), slope=0.2 + 0.01 * s)
            for s in range(3)]
    got = {c["key"]: nc.decide(flat, c)["verdict"] for c in nc.CLAIMS if c["key"].startswith("fig2")}
    assert got == {"fig2-asymmetry": "not resolved", "fig2-alignment": "not resolved",
                   "fig2-sqrt": "differs (below 0.5)"}


def test_old_logs_group_with_new_ones():
    a, b = run(0), run(1)
    a.config = {**a.config, "predictor": "linear", "predictor_wd": None}
    b.config = {**b.config, "wd_p": None, "head_norm": "bn", "predictor_reset": None}  # today's defaults
    assert nc.method(a) == nc.method(b) != nc.method(run(2, ema=0.0))
    assert nc.method(run(2, head_norm="none")) != nc.method(a) != nc.method(run(2, predictor_reset=390))


def _claim(key):
    return next(c for c in nc.CLAIMS if c["key"] == key)


def test_companion_paper_claims_pair_the_changed_heads_with_the_learned_runs():
    """The three rules of arXiv 2010.00578's claims on synthetic runs: each changed group is paired with the
    learned Wp of today's defaults (BN, no reset), never with another changed group; margins δ = 2 points."""
    base = {s: 0.39 + 0.01 * s for s in range(3)}
    learned = [run(s, knn={1000: base[s]}) for s in range(3)]

    def group(delta, spread=0.001, **kw):  # delta + spread (s - 1) kNN points from the learned run of each seed
        return [run(s, knn={1000: base[s] + (delta + spread * (s - 1)) / 100}, **kw) for s in range(3)]

    h = T2 / np.sqrt(3) * 0.1  # the interval's half-width at spread 0.1 points (sd 0.1)
    nonorm, center, reset = _claim("bn-none"), _claim("bn-center"), _claim("predictor-reset")
    others = group(-20.0, head_norm="center-detach") + group(+20.0, predictor="learned", predictor_reset=100)
    # no normalisation: 5 points below BN holds; 5 above does not; +-1 around 0 is not resolved
    r = nc.decide(learned + group(-5.0, 0.1, head_norm="none") + others, nonorm)
    assert r["seeds"] == [0, 1, 2] and r["mean"] == pytest.approx(-5.0) and r["verdict"] == "holds"
    assert r["upper"] == pytest.approx(-5.0 + h)
    assert nc.decide(learned + group(5.0, head_norm="none"), nonorm)["verdict"] == "does not hold"
    assert nc.decide(learned + group(0.0, 1.0, head_norm="none"), nonorm)["verdict"] == "not resolved"
    # centering: within +-2 holds (equivalence); 5 below differs; an interval across -2 and 0 is not resolved
    assert nc.decide(learned + group(1.0, 0.1, head_norm="center") + others, center)["verdict"] == "holds (within ±2)"
    assert nc.decide(learned + group(-5.0, 0.1, head_norm="center"), center)["verdict"] == "differs (below 0)"
    assert nc.decide(learned + group(-1.5, 1.0, head_norm="center"), center)["verdict"] == "not resolved"
    # the reset: 1.5 below is within the margin (holds); 5 below hurts; a wide interval is not resolved
    assert nc.decide(learned + group(-1.5, 0.1, predictor_reset=390) + others, reset)["verdict"] == "holds (above −2)"
    assert nc.decide(learned + group(-5.0, 0.1, predictor_reset=390), reset)["verdict"] == "hurts (below 0)"
    assert nc.decide(learned + group(0.0, 2.0, predictor_reset=390), reset)["verdict"] == "not resolved"
    # the negative controls: the same rule on another contrast (none − BN for centering and the reset, centering −
    # BN for no normalisation), computed beside each claim
    world = learned + group(-5.0, 0.1, head_norm="none") + group(0.5, 0.1, head_norm="center") \
        + group(-0.5, 0.1, predictor_reset=390)
    got = {k: nc.decide(world, c) for k, c in (("none", nonorm), ("center", center), ("reset", reset))}
    assert [got[k]["verdict"] for k in got] == ["holds", "holds (within ±2)", "holds (above −2)"]
    assert got["none"]["control"]["mean"] == pytest.approx(0.5) and got["none"]["control"]["verdict"] == "does not hold"
    assert got["center"]["control"]["mean"] == pytest.approx(-5.0)
    assert got["center"]["control"]["verdict"] == "differs (below 0)"
    assert got["reset"]["control"]["verdict"] == "hurts (below 0)"
    assert nc.decide(world, _claim("table8"))["control"] is None
    table = nc.claims_table(world)
    assert "| no normalisation − BN, the same rule: -5.0 [" in table and "→ hurts (below 0) |" in table
    assert "it must not hold" not in table
    # no changed run, no verdict; the learned side never takes a changed group
    assert nc.decide(learned + others, reset)["verdict"].startswith("undecided")
    assert nc.decide(group(-5.0, 0.1, head_norm="none") + others, nonorm)["verdict"].startswith("undecided")


def test_tables_state_seeds_and_margin(tmp_path):
    runs = [run(s, ev={"knn_acc": 0.50 + 0.01 * s, "linear_acc": 0.55, "step": 4000}) for s in range(3)]
    t = nc.seeds_table(runs, 41.1)
    assert "| 4000 | 0, 1, 2 | 50.0 / 51.0 / 52.0 | 51.0 ± 1.0 | 55.0 ± 0.0 |" in t
    assert f"+9.9 [{9.9 - T2 / np.sqrt(3):+.1f}, {9.9 + T2 / np.sqrt(3):+.1f}]" in t
    c = nc.claims_table(runs)
    assert c.count("\n") == 2 + len(nc.CLAIMS) and "undecided (0 seeds)" in c and "**holds**" in c


def test_load_runs_skips_eval_only_runs(tmp_path):
    from byoldyn.io import save_netcdf

    r = run(3, knn={0: 0.3})
    ds = r.log.assign(epoch=("step", [0.1, 1.0, 2.0]), loss=("step", [1.0, 0.5, 0.4]),
                      commutator_normalized=("step", [0.1, 0.1, 0.1]))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_netcdf(ds, tmp_path / "a" / "log.nc")
    (tmp_path / "a" / "curve.json").write_text(json.dumps(r.curve))
    (tmp_path / "b" / "eval.json").write_text(json.dumps({"knn_acc": 0.3, "pixels_knn_acc": 0.41}))
    got = nc.load_runs([tmp_path / "a", tmp_path / "b"])
    assert [(g.name, g.seed, g.curve) for g in got] == [("a", 3, [{"step": 0, "knn_acc": 0.3}])]


@pytest.mark.slow
def test_compare_claims_and_notes(tmp_path):
    """`byoldyn compare --claims --notes`: the Seeds and Claims sections, the baseline's raw pixels, the notes."""
    from byoldyn.cli import main
    from byoldyn.io import save_netcdf

    dirs = []
    for s in range(3):
        r = run(s, knn={0: 0.3, 1000: 0.4}, ev={"knn_acc": 0.5 + 0.01 * s, "linear_acc": 0.55, "step": 1000})
        c = {**r.config, "width": 0.25, "batch_size": 128, "wd": 4e-4, "loss": "cosine", "rho": 0.3}
        ds = r.log.assign(epoch=("step", [0.1, 1.0, 2.0]), loss=("step", [1.0, 0.5, 0.4]),
                          commutator_normalized=("step", [0.1, 0.1, 0.1]))
        ds.attrs["config"] = json.dumps(c)
        d = tmp_path / f"learned-s{s}"
        d.mkdir()
        save_netcdf(ds, d / "log.nc")
        (d / "eval.json").write_text(json.dumps(r.eval))
        (d / "curve.json").write_text(json.dumps(r.curve))
        dirs.append(d)
    base = tmp_path / "init"
    base.mkdir()
    (base / "eval.json").write_text(json.dumps({"knn_acc": 0.3, "pixels_knn_acc": 0.41, "batch_bn_knn_acc": 0.25}))
    notes = tmp_path / "notes.md"
    notes.write_text("## Reading\n\nA note.\n")
    out = tmp_path / "out"
    assert main(["compare", *map(str, dirs), str(base), "--out", str(out), "--claims", "--notes", str(notes)]) == 0
    text = (out / "RESULTS.md").read_text()
    assert "raw pixels on the same protocol: 41.0 %" in text and "| 50.0 / 51.0 / 52.0 | 51.0 ± 1.0 |" in text
    assert text.index("## Seeds") < text.index("## Claims") < text.index("## Reading") and text.endswith("A note.\n")
    assert "Fig. 2: asymmetry" in text and "**holds**" in text and "undecided (0 seeds)" in text
    assert main(["compare", str(dirs[0]), "--out", str(out), "--notes", str(tmp_path / "missing.md")]) == 2


def _explained(seed, slopes, noise=0.0, steps=(50, 1000)):
    """A learned-Wp run whose p_rayleigh is an exact power of each candidate (`slopes`: candidate -> exponent;
    the candidates are independent geometric spectra), with multiplicative noise `noise` on p."""
    r = run(seed)
    rng = np.random.default_rng(seed)
    m, n = 12, len(steps)
    cand = {"s": np.exp(-6.0 * (np.arange(m) / 11) ** 4), "two_view_ratio": np.geomspace(0.9, 0.2, m),
            "gram": np.geomspace(3.0, 1e-2, m)[rng.permutation(m)]}
    p = np.exp(sum(k * np.log(cand[c]) for c, k in slopes.items()) + noise * rng.standard_normal(m))
    ds = r.log.isel(step=slice(0, n)).assign_coords(step=list(steps))
    ds = ds.assign({c: (("step", "mode"), np.tile(v, (n, 1))) for c, v in cand.items()}
                   | {"p_rayleigh": (("step", "mode"), np.tile(p, (n, 1)))})
    return nc.Run(r.name, seed, r.config, ds)


def test_what_sets_p_the_candidates_and_their_controls():
    claims = {c["key"]: c for c in nc.CLAIMS if c["combine"] == "fit"}
    assert set(claims) == {f"p-{c}" for c in nc.CANDIDATES}
    runs = [_explained(s, {"two_view_ratio": 1.0}, noise=0.01) for s in range(3)]
    got = {k: nc.decide(runs, c) for k, c in claims.items()}
    assert got["p-two_view_ratio"]["verdict"] == "explains" and got["p-two_view_ratio"]["step"] == 1000
    assert got["p-two_view_ratio"]["mean"] == pytest.approx(1.0, abs=0.03)
    assert got["p-two_view_ratio"]["control"]["verdict"].startswith("does not explain")
    # s decreases too, but not as a power of r: log p on log s over 10 modes has R² 0.74, slope 0.39 (exact)
    assert got["p-s"]["verdict"].startswith("does not explain") and got["p-s"]["mean"] == pytest.approx(0.39, abs=0.02)
    assert "R²" in got["p-gram"]["verdict"]  # the Gram is a permuted spectrum: no line
    best = nc.claims_table(runs).split("fits p_j best")[1].split("\n")[0]
    assert "r_j (the two-view ratio)" in best and "3 seeds" in best
    # a log without the two-view ratio (before the instrumentation) is not read by these rows
    old = [run(s) for s in range(3)]
    assert nc.decide(old, claims["p-gram"])["verdict"].startswith("undecided (0")
    # a rerun of a seed beside a longer original: the other claims keep the longer log
    mixed = [run(s) for s in range(3)] + runs
    assert nc.decide(mixed, next(c for c in nc.CLAIMS if c["key"] == "fig2-sqrt"))["step"] == 1000


def test_seeds_table_keeps_a_rerun_to_an_earlier_step_apart():
    full = [run(s, ev={"knn_acc": 0.44, "step": 4000}) for s in range(3)]
    rerun = [run(s, ev={"knn_acc": 0.39, "step": 1000}) for s in range(3)]
    rows = [r for r in nc.seeds_table(full + rerun).splitlines()[2:] if r]
    assert len(rows) == 2 and "| 4000 | 0, 1, 2 | 44.0 / 44.0 / 44.0 |" in rows[0] + rows[1]
    assert "| 1000 | 0, 1, 2 | 39.0 / 39.0 / 39.0 |" in rows[0] + rows[1]
