"""Predictor resets (docs/predictor_reset.md): the companion paper's "reinitializing the predictor every few epochs
doesn't hurt BYOL", put into the linear theory. `fig_predictor_reset` checks, at the matrix level (Lemma 1), that
resets every T_r far above the critical period T_c let every mode of BYOL recover, its final spectrum above the run
without resets by the excess the mode theory predicts (a re-draw at Wp(0)'s own scale is reported as a finding),
that resets below T_c kill the modes whatever α_p is, the same threshold at the sampled level (minibatch SGD, seeds
`S_SEEDS`), and reports the narrow band η_r < η < η_c where one reset kills a mode that the run without resets keeps
(a finding). Five large compiled programs in all: (a), its run without resets and the wide re-draw share one, (a)'s
control (K_CTL short periods) one, (b) and (d) one (τ and the period are values), (c)'s four runs are the members of
one, the sampled runs of both periods one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import theory
from ..flows.modes import ModeState
from ..model import Data, Hyper, State
from ..reset import Reset, critical_period, modes_with_resets, recovery_time, simulate_with_resets, train_with_resets
from ..sampled import SGD, Setup, Source
from .common import Check, Finding, note

__all__ = ["fig_predictor_reset", "sampled_resets"]

KAPPA, ETA, BETA, N = 1.5, 0.04, 0.5, 4
RTOL, ATOL = 1e-8, 1e-10
#: the long reset period ("every few epochs": an STL-10 epoch is ~250 flow-time units, THEORY.md section 1)
T_LONG, K_LONG = 40.0, 15
#: frequent resets: K_SHORT periods of F_SHORT x T_c (below and above the critical period)
K_SHORT, F_SHORT = 800, (0.5, 2.0)
#: the re-draw: State.random's default scale, entries N(0, 0.1²/n2) (a re-draw whose Rayleigh quotients u_jᵀ Wp u_j
#: reach −p*_+ can kill a mode: docs/predictor_reset.md R4); WIDE_SCALE: Wp(0)'s own scale (entries N(0, 0.3²))
RESET_SCALE, WIDE_SCALE = 0.1, 0.3 * np.sqrt(N)
#: (a)'s control: the same re-draw every T_CTL = 0.1 (0.42 T_c), K_CTL periods, compared at t = K_CTL T_CTL = T_LONG
#: with the run without resets (its save at the end of its first period); its own program (K is static); at size
#: small Euler steps of T_CTL / CTL_STEPS_SMALL (the control fails by orders of magnitude either way)
T_CTL, K_CTL, CTL_STEPS_SMALL = 0.1, 400, 8
# Survival criterion, fixed before the runs: a mode is alive when α_p s_j > 0.1 p*_+² (a tenth of its fixed
# point), dead when below 1e-3 p*_+²; the dying modes decay as e^{−2η(1 − T/T_c) t} or faster, e^{−7} by the end.
ALIVE, DEAD = 0.1, 1e-3
# Recovery criterion (BYOL, long period): a reset to ~0 makes c_j = s_j − p_j²/α_p jump from ~0 to s_j (Theorem 1),
# which then decays as e^{−2ηt}, so the end spectrum exceeds the run without resets by the mode theory's excess e
# (one reset to 0 from the fixed point, the same T_r). Band, from the method: the re-draw's Rayleigh quotients q_j
# (std RESET_SCALE/√N) lower c_j's jump by q_j²: by at most r = (3 RESET_SCALE/√N)²/p*_+² (3σ); and the jumps of
# earlier periods add up, c_j before a reset being c_j⁺ e^{−2ηT_r}: at most a factor 1/(1 − e^{−2ηT_r}). Every mode's
# excess must lie in [e (1 − r), e (1 + r)/(1 − e^{−2ηT_r})]. (History: the first criterion, 1e-2 around no excess,
# failed at 6.4e-2; the second, ≤ 2x the excess, had no lower bound; this band replaces both.)
#: panel (d)'s grid of η / η_c (0.975 to 0.999, step 0.001) and the mode solves' saves per segment; panel (b)'s
#: mode theory runs on M_D copies of its mode with the same saves, so that (b) and (d) share one compiled program
M_D, MODE_SAVES = 25, 400
#: panel (c) at size small: Euler steps of T_c / C_STEPS_SMALL (32 per 0.5 T_c, whose R3 threshold is 32/31 of the
#: flow's: growth Σ_i 2 p_i τ dt with p_i = ŝτ i dt sums to ŝτ²T_r²(1 − 1/n)); full: adaptive at RTOL
C_STEPS_SMALL = 64
#: panel (e), the sampled level: SimSiam minibatch SGD (Euclidean loss, one view, momentum 0, weight decay η on W
#: and Wp) from panel (c)'s start, Wp and its momentum reset to 0 every 0.5 T_c and 2 T_c, at lr = T_c / S_STEPS
#: flow time per step (8 steps per 0.5 T_c: Euler threshold 8/7 of the flow's, 32/31 at 2 T_c, against R3's
#: margins 2.6x and 1.55x), batch S_BATCH, for K_SHORT x 0.5 T_c of flow time (panel (c)'s short runs); the
#: figure's seeds S_SEEDS (the minibatch streams; tests/test_reset.py runs a disjoint set)
S_STEPS, S_BATCH, S_SEEDS = 16, 64, (0, 1, 2, 3)


def _start():
    """A generic start: W entries N(0, 1) (all four modes in the useful basin), Wp entries N(0, 0.3²), Wa = W."""
    return State.random(jax.random.PRNGKey(3), N, N, scale=np.sqrt(N), wp_scale=0.3 * np.sqrt(N), target="copy")


def _spectrum(t, s):
    return jnp.linalg.eigvalsh(s.W @ s.W.T)


def _modes(t, s):
    """(s_j, p_j): F's eigenvalues and the Rayleigh quotients u_jᵀ Wp u_j on its eigenvectors."""
    lam, U = jnp.linalg.eigh(s.W @ s.W.T)
    return lam, jnp.einsum("ij,ik,kj->j", U, s.Wp, U)


def sampled_resets(seeds=S_SEEDS) -> dict:
    """Panel (e)'s runs: SimSiam minibatch SGD with Wp reset to 0 every f T_c, f in `F_SHORT` (module constants
    `S_STEPS`, `S_BATCH`), one run per seed (the minibatch stream `PRNGKey(seed)`), all through one compiled
    program vmapped over the seeds (`train_with_resets(..., segment=...)`: the period reaches it as a value).

    **Returns:** `{f: (ts, s)}` with `ts` (K,) the flow times of the segment ends and `s` (seeds, K, N) α_p s_j / p*_+²
    (F's eigenvalues) there; and `"pred"`: `{f: alive}` R3's prediction per mode from α_p s_j(0) (α_p = 1).
    """
    if len(seeds) < 1:
        raise ValueError("seeds must name at least one seed")
    tc, pp = float(critical_period(1.0, KAPPA, ETA)), float(theory.p_star(1.0, KAPPA, ETA)[1])
    s0 = _start()
    sgd = SGD(lr=tc / S_STEPS, wd=ETA, momentum=0.0)
    src = Source.isotropic(N, KAPPA - 1.0)
    setup = Setup(ema=False, batch=S_BATCH)
    seg = int(round(min(F_SHORT) * S_STEPS))                 # steps per 0.5 T_c: the common segment
    steps = K_SHORT * seg
    out: dict = {}
    for f in F_SHORT:
        run = jax.vmap(lambda key: train_with_resets(s0, sgd, src, key, steps, Reset(f * tc, "zeros"),  # noqa: B023
                                                     setup=setup, save_every=seg, segment=seg, observe=_spectrum))
        r = run(jnp.stack([jax.random.PRNGKey(int(seed)) for seed in seeds]))
        out[f] = (np.asarray(r.ts[0, :, -1]), np.asarray(r.observed[:, :, -1]) / pp ** 2)
    s_init = np.linalg.eigvalsh(np.asarray(s0.W @ s0.W.T))
    out["pred"] = {f: s_init > 2 * ETA / (f * tc) for f in F_SHORT}
    return out


def fig_predictor_reset(size: str = "full"):
    """(a) BYOL (Lemma 1, EMA) with Wp re-drawn (scale 0.1) every T_r = 40 against the run without resets; (b) the recovery
    after one reset, matrix against the mode theory; (c) SimSiam resets every 0.5 T_c and 2 T_c at α_p = 1 and 10
    (size small: Euler steps of T_c/64; full: adaptive, rtol 1e-8); (d) the single-reset band η_r < η < η_c (mode
    theory); (e) (c) at the sampled level: minibatch SGD, seeds `S_SEEDS` (`sampled_resets`)."""
    if not jax.config.jax_enable_x64:
        raise ValueError("fig_predictor_reset needs float64 (rtol 1e-8): jax.config.update('jax_enable_x64', True)")
    if size not in ("small", "full"):
        raise ValueError(f"size must be 'small' or 'full', got {size!r}")
    rows: list = []
    fig = plt.figure(figsize=(19, 10))
    grid = fig.add_gridspec(2, 3)
    ax_a, ax_b, ax_c = (fig.add_subplot(grid[0, i]) for i in range(3))
    ax_d, ax_e = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1:])
    data = Data.isotropic(N, sigma2=KAPPA - 1.0)
    pm, pp = (float(x) for x in theory.p_star(1.0, KAPPA, ETA))
    tc = float(critical_period(1.0, KAPPA, ETA))
    s0 = _start()

    # (a, b) BYOL with EMA, resets every T_LONG (random re-draw from the initial distribution) vs no reset
    hp = Hyper(alpha_p=1.0, eta=ETA, beta=BETA)
    t1 = T_LONG * K_LONG
    seg = simulate_with_resets(s0, hp, data, t1, Reset(T_LONG, "random", scale=RESET_SCALE),
                               key=jax.random.PRNGKey(7), saves=80, rtol=RTOL, atol=ATOL, observe=_modes)
    # the control without resets: the same segments with Wp kept (the same compiled program)
    ctl = simulate_with_resets(s0, hp, data, t1, Reset(T_LONG, "keep"), saves=80, rtol=RTOL, atol=ATOL,
                               observe=_modes)
    # Wp re-drawn at Wp(0)'s own scale (the same key: the same draws, 6x larger), the same program (R4, a finding)
    wide = simulate_with_resets(s0, hp, data, t1, Reset(T_LONG, "random", scale=WIDE_SCALE),
                                key=jax.random.PRNGKey(7), saves=80, rtol=RTOL, atol=ATOL, observe=_modes)
    # the control: the same re-draw every T_CTL < T_c, to t = K_CTL T_CTL (its own program: K is static)
    solve_ctl = dict(dt=T_CTL / CTL_STEPS_SMALL) if size == "small" else dict(rtol=RTOL, atol=ATOL)
    short = simulate_with_resets(s0, hp, data, K_CTL * T_CTL, Reset(T_CTL, "random", scale=RESET_SCALE),
                                 key=jax.random.PRNGKey(7), saves=1, observe=_spectrum, **solve_ctl)
    s_r, p_r = (np.asarray(a) for a in seg.observed)          # (K, m + 1, N)
    s_c = np.asarray(ctl.observed[0])
    ts = np.asarray(seg.ts)
    ok_a = all(bool(np.all(r_.status == 0)) for r_ in (seg, ctl, wide, short))
    alive_r, alive_c = s_r[-1, -1] > ALIVE * pp ** 2, s_c[-1, -1] > ALIVE * pp ** 2
    excess = s_r[-1, -1] / s_c[-1, -1] - 1.0                  # per mode (sorted eigenvalues)
    k_ctl = int(round(K_CTL * T_CTL / T_LONG)) - 1            # the no-reset run's period ending at K_CTL T_CTL
    excess_ctl = np.asarray(short.observed[-1, -1]) / s_c[k_ctl, -1] - 1.0
    # recovery: the time for s_j (to 5%) and p_j (to 5% of p*_+) to come back after each reset k >= 3 (converged)
    before_s, before_p = s_r[2:-1, -1], p_r[2:-1, -1]
    rec_s = recovery_time(ts[3:], s_r[3:], before_s, 0.05)
    rec_p = recovery_time(ts[3:], p_r[3:], before_p, 0.05)
    dip = float(np.max(1.0 - s_r[3:].min(axis=1) / before_s))
    # the mode theory's prediction for one reset to 0 from the fixed point (w = √s*, w_a = w, τ evolving); run on
    # M_D copies of the mode so that it shares panel (d)'s compiled program (same shapes; τ and the period traced)
    y = ModeState(*(jnp.full(M_D, pp) for _ in range(3)))  # w = √(p*²/α_p), α_p = 1
    mod = modes_with_resets(y, Hyper(alpha_p=1.0, eta=np.full(M_D, ETA), beta=BETA), KAPPA, 2 * T_LONG,
                            Reset(T_LONG, "zeros"), saves=MODE_SAVES, rtol=1e-10, atol=1e-12)
    ms, mp = np.asarray(mod.states.s)[..., :1], np.asarray(mod.states.p)[..., :1]
    pred_s = float(recovery_time(mod.ts[1:], ms[1:], ms[0, -1], 0.05)[0, 0])
    pred_p = float(recovery_time(mod.ts[1:], mp[1:], mp[0, -1], 0.05)[0, 0])
    pred_dip = float(1.0 - ms[1].min() / ms[0, -1, 0])
    pred_end = float(ms[1, -1, 0] / ms[0, -1, 0] - 1.0)  # the excess left at the end of a period (c_j's decay)
    r_q, q_c = (3 * RESET_SCALE / np.sqrt(N)) ** 2 / pp ** 2, float(np.exp(-2 * ETA * T_LONG))
    band = (pred_end * (1 - r_q), pred_end * (1 + r_q) / (1 - q_c))

    def in_band(x):
        return bool(np.all((x >= band[0]) & (x <= band[1])))
    tt = ts.ravel()
    for j in range(N):
        ax_a.semilogy(tt, s_r[..., j].ravel() / pp ** 2, color=f"C{j}", lw=1.2,
                      label="with resets every T_r = 40 (Wp re-drawn)" if j == 0 else None)
        ax_a.semilogy(tt, s_c[..., j].ravel() / pp ** 2, color="k", ls="--", lw=0.8,
                      label="no reset (control run)" if j == 0 else None)
    ax_a.set(xlabel="flow time t", ylabel="α_p s_j / p*_+² (F's eigenvalues)", ylim=(1e-2, 30))
    ax_a.set_title(f"(a) BYOL (Lemma 1, EMA β = {BETA}), η = {ETA}, σ² = {KAPPA - 1:g}, n = {N}:\nend spectrum "
                   f"above no reset by {excess.min():.1e} to {excess.max():.1e}\n(mode theory: {band[0]:.1e} to "
                   f"{band[1]:.1e})", fontsize=10)
    ax_a.legend(fontsize=8, loc="lower right")
    k = 5
    tk = ts[k] - ts[k, 0]
    for j in range(N):
        ax_b.plot(tk, s_r[k, :, j] / before_s[k - 3, j], color=f"C{j}", lw=1)
        ax_b.plot(tk, p_r[k, :, j] / pp, color=f"C{j}", lw=1, ls=":")
    tm = np.asarray(mod.ts[1] - mod.ts[1, 0])
    ax_b.plot(tm, ms[1, :, 0] / ms[0, -1, 0], "k--", lw=1.5, label="mode theory: s / s(t_k⁻)")
    ax_b.plot(tm, mp[1, :, 0] / pp, "k-.", lw=1.5, label="mode theory: p / p*_+ (reset to 0)")
    ax_b.plot([], [], "C0-", label="Lemma 1: s_j / s_j(t_k⁻) (coloured)")
    ax_b.plot([], [], "C0:", label="Lemma 1: u_jᵀ Wp u_j / p*_+")
    ax_b.set(xlabel="time since the reset t − t_k", ylabel="relative to before the reset", xlim=(0, T_LONG),
             ylim=(-0.2, 2.3))
    ax_b.set_title(f"(b) one reset (k = {k}): p_j back in {np.nanmax(rec_p):.1f} (theory, reset to 0: {pred_p:.1f});"
                   f"\ns_j dips ≤ {dip:.1%} (theory {pred_dip:.1%}: negative u_jᵀWp u_j shrink s_j),\nback within "
                   f"5% of s_j(t_k⁻) in ≤ {np.nanmax(rec_s):.1f} (theory "
                   f"{'never' if np.isinf(pred_s) else f'{pred_s:.1f}'}: its end excess {pred_end:.1%} > 5%)",
                   fontsize=10)
    ax_b.legend(fontsize=8, loc="upper right")
    recovered = bool(np.all(np.isfinite(rec_s)) and np.all(np.isfinite(rec_p)))

    # (c) SimSiam (τ = 1, where the mode theory is exact), resets of Wp to 0 every f T_c, α_p = 1 and 10
    # the four runs (α_p, T_r) are the members of one vmapped program
    runs = [(ap, f) for ap in (1.0, 10.0) for f in F_SHORT]
    ap_b = np.array([ap for ap, _ in runs])
    sc = np.sqrt(ap_b)[:, None, None]
    st = State(s0.W[None] / sc, jnp.broadcast_to(s0.Wp, (len(runs), N, N)), s0.Wa[None] / sc)  # R1's scaled starts
    periods = [f * tc for _, f in runs]
    # small: fixed Euler steps of T_c / C_STEPS_SMALL (the threshold moves by 1/(steps per period − 1) ≤ 3%, R3's
    # margins are 1.55x and more); full: the adaptive solver at rtol RTOL
    solve = dict(dt=tc / C_STEPS_SMALL) if size == "small" else dict(rtol=RTOL, atol=ATOL)
    r = simulate_with_resets(st, Hyper(alpha_p=ap_b, eta=ETA), data, K_SHORT * np.array(periods),
                             Reset(periods, "zeros"), saves=2, ema=False, observe=_spectrum, **solve)
    out = {run: (np.asarray(r.ts[i, :, -1]), run[0] * np.asarray(r.observed[i, :, -1]) / pp ** 2,
                 int(r.status[i].max())) for i, run in enumerate(runs)}
    for (ap, f), (t, s, _) in out.items():
        for j in range(N):
            ax_c.semilogy(t, np.maximum(s[:, j], 1e-12), color="C3" if f < 1 else "C2",
                          ls="-" if ap == 1 else ":", lw=1.5 if ap == 1 else 2.5,
                          label=f"T_r = {f:g} T_c, α_p = {ap:g}" if j == 3 else None)
    ax_c.axhline(1.0, color="k", lw=0.8, ls="--")
    ax_c.set(xlabel="flow time t", ylabel="α_p s_j / p*_+² at the end of each period", ylim=(1e-9, 1e3))
    ax_c.set_title(f"(c) SimSiam, Wp reset to 0 every T_r; T_c = 2κ²η/(τ²(τ² − 4κη)) = {tc:.3f}:\n"
                   "dotted (α_p = 10, W(0)/√10) on top of solid (α_p = 1): α_p drops out", fontsize=10)
    ax_c.legend(fontsize=8, loc="lower left")
    s_lo1, s_hi1 = out[1.0, F_SHORT[0]][1][-1], out[1.0, F_SHORT[1]][1][-1]
    s_lo10, s_hi10 = out[10.0, F_SHORT[0]][1][-1], out[10.0, F_SHORT[1]][1][-1]
    ok_c = all(v[2] == 0 for v in out.values())
    # which modes survive frequent resets: α_p s_j(0) against the map's unstable point ŝ_u ≈ 2η/(τ² T_r) (R3)
    s_init = np.linalg.eigvalsh(np.asarray(s0.W @ s0.W.T))
    pred_lo = s_init > 2 * ETA / (F_SHORT[0] * tc)
    pred_hi = s_init > 2 * ETA / (F_SHORT[1] * tc)

    # (d) mode theory, SimSiam: one reset to 0 from the fixed point (p*_+, p*_+²/α_p), η near η_c
    ec = float(theory.eta_c(1.0, KAPPA))
    fr = np.linspace(0.975, 0.999, M_D)
    e = fr * ec
    p_plus = np.asarray(theory.p_star(1.0, KAPPA, e)[1])
    y1 = ModeState.from_pst(p=p_plus, s=p_plus ** 2, tau=1.0)
    one = modes_with_resets(y1, Hyper(alpha_p=1.0, eta=e, beta=BETA), KAPPA, 2 * 2000.0, Reset(2000.0, "zeros"),
                            tau=1.0, saves=MODE_SAVES, rtol=1e-10, atol=1e-12)
    end = np.asarray(one.final.s) / p_plus ** 2
    killed = end < DEAD
    eta_r = float(fr[np.argmax(killed)]) if killed.any() else np.nan
    ax_d.semilogy(fr, np.maximum(end, 1e-12), "o-", ms=3)
    ax_d.axvline(eta_r, color="r", ls=":", label=f"η_r ≈ {eta_r:.3f} η_c")
    ax_d.set(xlabel="η / η_c", ylabel="α_p s / p*_+² at t = 2000 after one reset to 0", ylim=(1e-12, 10))
    ax_d.set_title("(d) mode theory (SimSiam): one reset from the fixed point kills the mode\n"
                   "only for η_r < η < η_c (without the reset it stays at p*_+)", fontsize=10)
    ax_d.legend(fontsize=8)

    rows.append(Check(
        "Predictor reset (companion paper: reinitializing the predictor every few epochs doesn't hurt BYOL): "
        f"Lemma 1, BYOL with EMA, Wp re-drawn (entries N(0, 0.1²/n2)) every T_r = {T_LONG:g} (≫ T_c = "
        f"{tc:.2f}), {K_LONG} periods: every mode recovers, and the end spectrum exceeds the run without resets by "
        "the mode theory's excess (c_j's jump at each reset, decaying as e^{−2ηt}; docs/predictor_reset.md R2)",
        f"end spectrum over no reset: {excess.min():.2e} to {excess.max():.2e} (per mode); surviving modes "
        f"{int(alive_r.sum())} (no reset {int(alive_c.sum())}); after each reset p_j back within 5% in ≤ "
        f"{np.nanmax(rec_p):.1f}, s_j (dip ≤ {dip:.1%}) within 5% of s_j(t_k⁻) in ≤ {np.nanmax(rec_s):.1f}",
        f"every mode in [{band[0]:.2e}, {band[1]:.2e}]: the mode theory's excess {pred_end:.2e} (one reset to 0 "
        f"from the fixed point) times [1 − r, (1 + r)/(1 − e^{{−2ηT_r}})], r = {r_q:.3f} (the re-draw's Rayleigh "
        "quotients, 3σ), 1/(1 − e^{−2ηT_r}) the jumps of earlier periods; every mode back within the period",
        ok_a and in_band(excess) and recovered and bool(np.array_equal(alive_r, alive_c)),
        f"the same re-draw every T_r = {T_CTL:g} (≈ {T_CTL / tc:.2f} T_c), {K_CTL} periods, against the run without "
        f"resets at t = {K_CTL * T_CTL:g}: end spectrum over no reset {excess_ctl.min():.1e} to "
        f"{excess_ctl.max():.1e}",
        in_band(excess_ctl)))
    rows.append(Check(
        "Predictor reset, frequent resets (docs/predictor_reset.md R1, R3; SimSiam, Lemma 1, Wp reset to 0 every T_r): "
        "mode j survives iff τ² α_p s_j T_r / 2 > η (its growth over a period beats the weight decay), whatever α_p",
        f"T_r = 0.5 T_c: modes alive at α_p = 1 / 10: {int((s_lo1 > ALIVE).sum())} / {int((s_lo10 > ALIVE).sum())}; "
        f"T_r = 2 T_c: {int((s_hi1 > ALIVE).sum())} / {int((s_hi10 > ALIVE).sum())}; max |α_p s_j(α_p = 10) − "
        f"α_p s_j(1)| / p*_+² = {float(np.max(np.abs(s_lo10 - s_lo1)) + np.max(np.abs(s_hi10 - s_hi1))):.1e}",
        f"alive: {int(pred_lo.sum())} (0.5 T_c), {int(pred_hi.sum())} (2 T_c) from α_p s_j(0) > 2η/(τ² T_r); "
        f"dead ones < {DEAD:g} p*_+²",
        ok_c and bool(np.array_equal(s_lo1 > ALIVE, pred_lo) and np.array_equal(s_hi1 > ALIVE, pred_hi)
                      and np.array_equal(s_lo10 > ALIVE, pred_lo) and np.all((s_lo1 > ALIVE) | (s_lo1 < DEAD))),
        "a predictor α_p times faster survives α_p times shorter periods (the hypothesis of a fast predictor): "
        f"at α_p = 10 it predicts all {N} modes alive at 0.5 T_c",
        bool(np.all(s_lo10 > ALIVE))))
    # (e) the sampled level: minibatch SGD, SimSiam, resets to 0 every 0.5 T_c and 2 T_c, S_SEEDS seeds
    samp = sampled_resets(S_SEEDS)
    for f in F_SHORT:
        t, sv = samp[f]
        for i in range(len(S_SEEDS)):
            for j in range(N):
                ax_e.semilogy(t, np.maximum(sv[i, :, j], 1e-12), color="C3" if f < 1 else "C2", lw=0.8, alpha=0.7,
                              label=f"T_r = {f:g} T_c ({len(S_SEEDS)} seeds x {N} modes)" if i == j == 0 else None)
    ax_e.axhline(1.0, color="k", lw=0.8, ls="--")
    for y_, name in ((ALIVE, "alive"), (DEAD, "dead")):
        ax_e.axhline(y_, color="0.5", lw=0.8, ls=":")
        ax_e.text(0.0, y_ * 1.3, name, fontsize=8, color="0.4")
    ax_e.set(xlabel="flow time t = steps x lr", ylabel="α_p s_j / p*_+² at the end of each 0.5 T_c", ylim=(1e-5, 1e3))
    ends = {f: samp[f][1][:, -1] for f in F_SHORT}
    alive_s = {f: ends[f] > ALIVE for f in F_SHORT}
    counts = {f: [int(a.sum()) for a in alive_s[f]] for f in F_SHORT}
    ok_e = all(np.all(alive_s[f] == samp["pred"][f]) and np.all((ends[f] > ALIVE) | (ends[f] < DEAD))
               for f in F_SHORT)
    lo, hi = F_SHORT
    dying = ends[lo][:, ~samp["pred"][lo]]
    ax_e.set_title(f"(e) sampled level: SimSiam minibatch SGD (batch {S_BATCH}, lr = T_c/{S_STEPS}, momentum 0), Wp "
                   f"reset to 0 every T_r; seeds {', '.join(map(str, S_SEEDS))}:\nmodes alive per seed at T_r = "
                   f"{lo:g} T_c: {counts[lo]}, at {hi:g} T_c: {counts[hi]} (R3: {int(samp['pred'][lo].sum())}, "
                   f"{int(samp['pred'][hi].sum())})", fontsize=10)
    ax_e.legend(fontsize=8, loc="lower left")
    rows.append(Check(
        "Predictor reset at the sampled level (docs/predictor_reset.md R3; SimSiam minibatch SGD, batch "
        f"{S_BATCH}, lr = T_c/{S_STEPS} flow time per step, momentum 0, Wp and its momentum reset to 0 every T_r): "
        "mode j survives iff τ² α_p s_j T_r / 2 > η, to sampling precision",
        f"seeds {', '.join(map(str, S_SEEDS))}: modes alive at T_r = {lo:g} T_c: {counts[lo]}, at {hi:g} T_c: "
        f"{counts[hi]}; the dying mode ends at α_p s/p*_+² = {dying.min():.1e} to {dying.max():.1e}; the alive "
        f"ones ≥ {min(ends[lo][alive_s[lo]].min(), ends[hi].min()):.1f}",
        f"alive: {int(samp['pred'][lo].sum())} ({lo:g} T_c), {int(samp['pred'][hi].sum())} ({hi:g} T_c) on every "
        f"seed from α_p s_j(0) > 2η/(τ² T_r); dead ones < {DEAD:g} p*_+²",
        ok_e,
        f"resets never hurt (the companion paper's statement at any period): every mode kept at T_r = {lo:g} T_c, "
        f"{N} of {N} on every seed",
        all(c == N for c in counts[lo])))
    # the wide re-draw (R4): which modes it loses, and the resets where R4's η = 0 rule (a quotient q_j < 0 with
    # q_j² > α_p s_j kills) fires; q_j just after the reset, s_j just before it (the same F: only Wp changes)
    s_w, p_w = (np.asarray(a) for a in wide.observed)
    lost_w = s_w[-1, -1] < ALIVE * pp ** 2
    q_w, sb_w = p_w[1:, 0], s_w[:-1, -1]
    live = sb_w > ALIVE * pp ** 2                             # the pairs whose mode is alive before the reset
    fires = (q_w < 0) & (q_w ** 2 > sb_w) & live
    rows.append(Finding(
        f"Predictor reset, re-drawn at Wp(0)'s own scale (BYOL, Lemma 1, entries N(0, 0.3²), Reset(scale = "
        f"{WIDE_SCALE:g}), every T_r = {T_LONG:g}, {K_LONG} periods, the draws of row 1 scaled 6x; "
        "docs/predictor_reset.md R4)",
        f"modes lost (α_p s_j < {ALIVE} p*_+² at the end): {int(lost_w.sum())} of {N} (re-draw at 0.1: "
        f"{int((~alive_r).sum())}); Rayleigh quotients u_jᵀWp u_j after the resets down to {q_w.min() / pp:.2f} p*_+; "
        f"R4's η = 0 rule (q_j < −√(α_p s_j)) fires at {int(fires.sum())} of {int(live.sum())} (reset, alive mode) "
        "pairs",
        "reinitializing the predictor doesn't hurt",
        "a re-draw at the predictor's own scale is not small against p*_+ = "
        f"{pp:.2f}: a quotient below −√(α_p s_j) sends the mode into the collapse basin (R4); the mode theory is exact "
        "only for aligned resets, so the rule is a guide, not the criterion"))
    rows.append(Finding(
        "Predictor reset, the band η_r < η < η_c (a measurement of the mode theory, not a prediction checked: SimSiam "
        "τ = 1, one reset of p_j to 0 from the fixed point (p*_+, p*_+²/α_p))",
        f"the reset kills the mode for η ≥ {eta_r:.3f} η_c (grid step 0.001 η_c); below, it recovers",
        "reinitializing the predictor doesn't hurt",
        "near the saddle-node η_c = τ²/4κ the useful basin is thin: (0, p*_+²) falls below the stable manifold of the "
        "saddle (p*_−, p*_−²); the band is α_p-free (R1) and universal in κη/τ² (R1's rescaling), 1.5% of η_c wide, "
        "so a run at "
        "such a weight decay loses modes to a reset that it keeps without one"))
    fig.suptitle("Predictor resets in linear BYOL / SimSiam: Wp regrows at rate α_p s_j τ, which the balance "
                 "(Theorem 1) fixes at p*_+² whatever α_p is", fontsize=11)
    note(fig, f"Chosen: κ = {KAPPA}, η = {ETA}, n1 = n2 = {N}, W(0) ~ N(0, 1), Wp(0) ~ N(0, 0.3²) entries, Wa(0) = W(0); "
              f"rtol {RTOL:g}, atol {ATOL:g}; (a, b) β = {BETA}, reset = re-draw at scale 0.1 (control: every {T_CTL:g}"
              f"{f', Euler steps of {T_CTL / CTL_STEPS_SMALL:g}' if size == 'small' else ''}); (c) {K_SHORT} "
              f"periods{f', Euler steps of T_c/{C_STEPS_SMALL}' if size == 'small' else ''}; (e) {K_SHORT} x 0.5 T_c "
              f"of flow time; alive: α_p s_j > {ALIVE} p*_+², dead < {DEAD:g} p*_+².")
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    return fig, rows
