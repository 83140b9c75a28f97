"""Figures of the decoupled mode dynamics (THEORY.md section 7): Figs. 3, 4, 5 and 10."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from .. import theory
from ..flows.modes import ModePST, ModeState, cubic_field, mode_field, pst_field, solve_modes
from ..model import Hyper
from ..phase import STABLE_COLOR, UNSTABLE_COLOR, basin_map, portrait, rk4
from ..theory import STABLE_FOCUS, STABLE_NODE
from .common import Check, note

__all__ = ["fig3_phase_portraits", "fig4_cubic", "fig5_decoupled", "fig10_appendix_d", "fig_alpha_p"]


def _ps(P, S, hyper, kappa, tau):
    """The (p, s) plane of Eqs. 11-12 at fixed τ, for `portrait`."""
    d = pst_field(ModePST(jnp.asarray(P), jnp.asarray(S), jnp.full(np.shape(P), tau)), hyper, kappa, False)
    return d.p, d.s


def fig3_phase_portraits(size: str = "full"):
    """Fig. 3: phase portraits of Eqs. 11-12 in (p, s) at τ = 1, α_p = 1 for η = 0, 0.01, 1 (section 7.3-7.4).

    Red: stable fixed points, green: unstable; dashed: the parabola s = p²/α_p; grey: nullclines.
    Also the basin map (collapsed starts shaded) and the checks on fixed points and basin boundary.
    """
    tau, alpha_p, sigma2 = 1.0, 1.0, 0.5  # σ² is UNCONFIRMED in the paper
    kappa = 1.0 + sigma2
    etas = (0.0, 0.01, 1.0)
    grid = 512 if size == "full" else 128
    xlim, ylim = (-0.4, 1.2), (0.0, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    checks = []
    for ax, eta in zip(axes, etas):
        hyper = Hyper(alpha_p=alpha_p, eta=eta)
        # basin map: each pixel a start, integrated together (RK4, dt = 0.05) to t = 400
        P, S = np.meshgrid(np.linspace(*xlim, grid), np.linspace(*ylim, grid))
        y0 = ModePST(jnp.asarray(P), jnp.asarray(S), jnp.full(P.shape, tau))
        _, col = basin_map(pst_field, y0, 400.0, args=(hyper, kappa, False), dt=0.05)
        ax.contourf(P, S, col.astype(float), levels=[0.5, 1.5], colors=["0.85"])
        fps = []
        if eta == 0.0:  # fixed lines (section 7.3): s = 0 (stability by sign of 2p(τ − κp)) and p = τ/κ
            p_line = np.linspace(*xlim, 200)
            fps.append((p_line, 0 * p_line, (p_line < 0) | (p_line > tau / kappa)))
            s_line = np.linspace(0.005, ylim[1], 100)
            fps.append((np.full_like(s_line, tau / kappa), s_line, np.ones_like(s_line, bool)))
        else:
            p, s, code = (np.asarray(a) for a in theory.fixed_points_ps(tau, kappa, alpha_p, eta))
            fps += [(p[i], s[i], code[i] in (STABLE_NODE, STABLE_FOCUS)) for i in range(3)]
        starts = [(0.05, 0.6), (0.3, 0.02), (0.9, 0.05), (-0.3, 0.5), (0.02, 0.005), (1.1, 0.9)]
        trajs = []
        for p0, s0 in starts:
            sol = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.asarray(tau)), 200.0,
                              args=(hyper, kappa, False), ts=np.geomspace(1e-3, 200.0, 400))
            trajs.append((np.r_[p0, np.asarray(sol.states.p)], np.r_[s0, np.asarray(sol.states.s)]))
        portrait(ax, lambda x, y: _ps(x, y, hyper, kappa, tau), xlim, ylim, fixed_points=fps,
                 trajectories=trajs, parabola_alpha_p=alpha_p)
        kind = {0.0: "no weight decay", 0.01: "weak weight decay", 1.0: "strong weight decay"}[eta]
        ax.set_title(f"η = {eta:g} ({kind})")
        if eta > 0:
            pm, pp = (float(v) for v in theory.p_star(tau, kappa, eta))
            if np.isfinite(pm):
                # the basin boundary along the parabola: first surviving grid cell vs p*_-
                pg = np.linspace(0.0, 1.0, grid + 1)
                y0 = ModePST(jnp.asarray(pg), jnp.asarray(pg ** 2 / alpha_p), jnp.full(pg.shape, tau))
                yf, colp = basin_map(pst_field, y0, 2000.0, args=(hyper, kappa, False), dt=0.05)
                edge = pg[np.argmax(~colp)]
                cell = pg[1] - pg[0]
                checks.append(Check(f"Section 7.4: collapse basin boundary along the parabola (η = {eta:g}, basin map "
                                    f"{grid + 1} cells) vs p*_−", f"{edge:.5f} (cell {cell:.4f})", f"p*_− = {pm:.5f}",
                                    abs(edge - pm) <= cell))
                end = np.asarray(yf.p)[~colp]
                checks.append(Check(f"Section 7.4: end point of surviving starts on the parabola (η = {eta:g}) vs p*_+",
                                    f"max |p(∞) − p*_+| = {np.max(np.abs(end - pp)):.1e}", f"p*_+ = {pp:.5f}",
                                    np.max(np.abs(end - pp)) < 1e-6))
            else:
                checks.append(Check(f"Obs#5: η = {eta:g} > η_c = {float(theory.eta_c(tau, kappa)):.4f}: fraction of "
                                    f"the (p, s) grid that collapses", f"{col.mean():.4f}", "1 (collapse is certain)",
                                    bool(col.all())))
    # the paper's numerical Jacobian check (section 7.4): σ² = 0.5, τ = 1, α_p = 1, η = 0.01
    p, s, _ = theory.fixed_points_ps(1.0, 1.5, 1.0, 0.01)
    J = theory.jacobian_ps(p[1:], s[1:], 1.0, 1.5, 1.0, 0.01)
    ev = np.sort(np.linalg.eigvals(np.asarray(J)).real, axis=-1)
    checks.append(Check("Section 7.4: Jacobian eigenvalues at p*_+ and p*_− (σ² = 0.5, τ = 1, α_p = 1, η = 0.01)",
                        f"p*_+ = {float(p[2]):.4f}: {np.round(ev[1], 4)}; p*_− = {float(p[1]):.4f}: {np.round(ev[0], 4)}",
                        "0.6565: {−0.64, −0.02}; 0.0102: {−0.02, +0.0098}",
                        bool(np.allclose(ev[1], [-0.64, -0.02], atol=0.005) and np.allclose(ev[0], [-0.02, 0.0098], atol=5e-4))))
    fig.suptitle("Fig. 3: (p_j, s_j) phase portraits of Eqs. 11-12, τ = 1, α_p = 1 "
                 "(red stable, green unstable fixed points; grey shading: starts that collapse)")
    note(fig, f"Chosen (UNCONFIRMED): σ² = {sigma2} (κ = {kappa}); axes p ∈ {xlim}, s ∈ {ylim}. Dashed: s = p²/α_p. "
              "Nullclines: ṗ = 0 solid grey, ṡ = 0 dotted grey. Basin map: RK4 dt = 0.05 to t = 400, collapsed if s < 1e-4.")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig, checks


def fig4_cubic(size: str = "full"):
    """Fig. 4: the 1-D cubic ṗ = p²(τ − κp) − ηp on the parabola (Eq. 16), in its three regimes
    (a) η = 0, (b) 0 < η <= η_c = τ²/4κ, (c) η > η_c; plus the bifurcation checks (Obs#4, #5)."""
    tau, sigma2 = 1.0, 0.5
    kappa = 1.0 + sigma2
    ec = float(theory.eta_c(tau, kappa))
    regimes = [("(a) η = 0", 0.0), ("(b) 0 < η ≤ τ²/4κ", 0.6 * ec), ("(c) η > τ²/4κ", 1.5 * ec)]
    p = np.linspace(-0.2, 0.85, 400)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, (label, eta) in zip(axes, regimes):
        hyper = Hyper(eta=eta)
        ax.plot(p, np.asarray(cubic_field(jnp.asarray(p), hyper, kappa, tau)), "tab:blue")
        ax.axhline(0, color="k", lw=0.6)
        pm, pp = (float(v) for v in theory.p_star(tau, kappa, eta))
        pts = [(0.0, eta > 0, "p = 0")] + ([(pm, False, "p*_−"), (pp, True, "p*_+")] if np.isfinite(pm) else [])
        if eta == 0:
            pts = [(0.0, None, "p = 0 (semi-stable)"), (tau / kappa, True, "τ/κ")]
        for x, stable, name in pts:
            color = "0.5" if stable is None else STABLE_COLOR if stable else UNSTABLE_COLOR
            ax.plot(x, 0, "o", color=color, ms=7, markeredgecolor="k", zorder=5)
            ax.annotate(name, (x, 0), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
        ax.set_title(label + (f" (η = {eta:.3g})" if eta else ""))
        ax.set_xlabel("p")
    axes[0].set_ylabel("dp/dt on the parabola")
    fig.suptitle(f"Fig. 4: Eq. 16, ṗ = p²(τ − κp) − ηp = −κp(p − p*_−)(p − p*_+), τ = {tau}, κ = {kappa}, "
                 f"η_c = τ²/4κ = {ec:.4f}")
    note(fig, f"Chosen: σ² = {sigma2}; (b) uses η = 0.6 η_c, (c) η = 1.5 η_c. Red: stable, green: unstable, grey: semi-stable.")
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))

    # bifurcation at η_c (Obs#5): integrate many starts of the 1-D cubic together
    n = 2001 if size == "full" else 201
    p0 = jnp.linspace(1e-3, 2.0, n)
    above = np.asarray(rk4(cubic_field, p0, 3000.0, args=(Hyper(eta=1.01 * ec), kappa, tau), dt=0.05))
    pm, pp = (float(v) for v in theory.p_star(tau, kappa, 0.99 * ec))
    starts = jnp.asarray([pm - 0.01, pm + 0.01])
    below = np.asarray(rk4(cubic_field, starts, 3000.0, args=(Hyper(eta=0.99 * ec), kappa, tau), dt=0.05))
    # Obs#4: p*_- grows with η; Obs#10: p*_- falls with τ
    etas = np.linspace(0.0, ec, 50)
    pms = np.asarray(theory.p_star(tau, kappa, etas)[0])
    taus = np.linspace(0.5, 1.0, 50)
    pmt = np.asarray(theory.p_star(taus, kappa, 0.2 * 0.25 / kappa)[0])
    checks = [
        Check(f"Obs#5 / Eq. 16: just above η_c (η = 1.01 η_c), max p(t = 3000) over {n} starts in (0, 2]",
              f"{np.max(np.abs(above)):.1e}", "0 (every start collapses)", bool(np.max(np.abs(above)) < 1e-2)),
        Check("Section 7.4: just below η_c (η = 0.99 η_c), starts p*_− ∓ 0.01 end at",
              f"{below[0]:.2e}, {below[1]:.6f}", f"0 and p*_+ = {pp:.6f}",
              bool(abs(below[0]) < 1e-2 and abs(below[1] - pp) < 1e-6)),
        Check("Obs#4 / Obs#10: p*_− increases with η (0 → η_c) and decreases with τ (0.5 → 1)",
              f"monotone in η: {bool(np.all(np.diff(pms) > 0))}; in τ: {bool(np.all(np.diff(pmt) < 0))}",
              "increasing in η, decreasing in τ", bool(np.all(np.diff(pms) > 0) and np.all(np.diff(pmt) < 0))),
    ]
    return fig, checks


def fig5_decoupled(size: str = "full"):
    """Fig. 5: the decoupled Eqs. 11-13 over time (symmetric Wp) while η (top) and β (bottom) vary,
    with λ_min(K) (section 7.5: Obs#7-#9). Discrete lr α = 0.01: β = 0.4 is γ_a = 0.996, η = 0.04 is η̄ = 4e-4."""
    sigma2, alpha_p = 0.5, 1.0  # σ² UNCONFIRMED
    kappa = 1.0 + sigma2
    n_modes = 8 if size == "full" else 4
    t1 = 400.0
    rng = np.random.default_rng(5)
    p0 = rng.uniform(0.02, 0.6, n_modes)      # UNCONFIRMED: initial modes
    s0 = p0 ** 2 / alpha_p + rng.uniform(0.0, 0.05, n_modes)
    y0 = ModeState(jnp.sqrt(jnp.asarray(s0)), jnp.asarray(p0), jnp.zeros(n_modes))  # τ(0) = 0
    ts = np.linspace(0, t1, 801)
    rows = [("η", [0.0, 0.01, 0.04, 0.1], lambda v: Hyper(alpha_p=alpha_p, eta=v, beta=0.4)),
            ("β", [0.04, 0.1, 0.4, 2.0], lambda v: Hyper(alpha_p=alpha_p, eta=0.04, beta=v))]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    res = {}
    for r, (name, values, make) in enumerate(rows):
        for i, v in enumerate(values):
            h = make(v)
            sol = solve_modes(mode_field, y0, t1, args=(h, kappa), ts=ts, rtol=1e-9, atol=1e-12)
            st = sol.states
            w, wp, wa = (np.asarray(a) for a in st)
            s = w * w
            # K_j = κ α_p s_j/2 + κ p_j² − τ_j p_j + 3η/2 (Eq. 17), τ_j = w_a/w = w_a w/s_j (0 at s_j = 0)
            Kj = kappa * alpha_p * s / 2 + kappa * wp * wp - np.where(s > 0, wa * w / np.where(s > 0, s, 1), 0) * wp + 1.5 * float(h.eta)
            res[(name, v)] = dict(s=s, p=wp, lmin=Kj.min(-1))
            c = f"C{i}"
            axes[r, 0].plot(ts, wp, color=c, lw=0.8, label=f"{name} = {v:g}")
            axes[r, 1].semilogy(ts, np.maximum(s, 1e-12), color=c, lw=0.8)
            axes[r, 2].plot(ts, Kj.min(-1), color=c, label=f"{name} = {v:g}")
        axes[r, 0].set_ylabel(f"varying {name}\np_j (eigenvalues of Wp)")
        axes[r, 1].set_ylabel("s_j (eigenvalues of F)")
        axes[r, 2].set_ylabel("λ_min(K) = min_j K_j")
        axes[r, 2].axhline(0, color="k", lw=0.6)
        handles = [plt.Line2D([], [], color=f"C{i}") for i in range(len(values))]
        axes[r, 0].legend(handles, [f"{name} = {v:g}" for v in values], fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("t")
    fig.suptitle("Fig. 5: decoupled dynamics Eqs. 11-13 (symmetric Wp), top: η varies (β = 0.4), bottom: β varies (η = 0.04)")
    note(fig, f"lr α = 0.01 (β = 0.4 ↔ γ_a = 0.996; η = 0.04 ↔ η̄ = 4e-4). Chosen (UNCONFIRMED): σ² = {sigma2}, α_p = {alpha_p}, "
              f"{n_modes} modes with p_j(0) ~ U(0.02, 0.6), s_j(0) = p_j(0)² + U(0, 0.05), τ(0) = 0, horizon t = {t1:g}; "
              "the η and β grids.")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))

    # Obs#7 (η raises λ_min(K)), Obs#3/4 (η shrinks final p_j, s_j), Obs#9 (small β is slow)
    lmin_eta = [float(np.min(res[("η", v)]["lmin"])) for v in rows[0][1]]
    pfin = [float(np.max(res[("η", v)]["p"][-1])) for v in rows[0][1]]
    pp = [float(theory.p_star(1.0, kappa, v)[1]) for v in rows[0][1]]

    def t90(d):  # time at which the top s_j reaches 90% of its final value
        top = d["s"][:, np.argmax(d["s"][-1])]
        return float(ts[np.argmax(top >= 0.9 * top[-1])])

    slow = [t90(res[("β", v)]) for v in rows[1][1]]
    lmin_beta = [float(np.min(res[("β", v)]["lmin"])) for v in rows[1][1]]
    checks = [
        Check("Obs#7: min_t λ_min(K) rises with η (η = 0, 0.01, 0.04, 0.1; β = 0.4)",
              ", ".join(f"{v:.3f}" for v in lmin_eta), "increasing", bool(np.all(np.diff(lmin_eta) > 0))),
        Check("Obs#3/#4: largest final p_j vs p*_+(τ = 1) as η grows (modes reach the stable fixed point)",
              ", ".join(f"{v:.4f}" for v in pfin), ", ".join(f"{v:.4f}" for v in pp),
              bool(np.allclose(pfin, pp, atol=1e-3))),
        Check("Obs#9: time for the top s_j to reach 90% of its final value (β = 0.04, 0.1, 0.4, 2)",
              ", ".join(f"{v:.0f}" for v in slow), "decreasing in β (slow EMA is slow)", bool(np.all(np.diff(slow) < 0))),
        Check("Obs#8: min_t λ_min(K) as the EMA slows (β = 0.04, 0.1, 0.4, 2; η = 0.04)",
              ", ".join(f"{v:.3f}" for v in lmin_beta), "larger for smaller β (EMA helps alignment)",
              bool(np.all(np.diff(lmin_beta) < 0))),
    ]
    return fig, checks


def fig10_appendix_d(size: str = "full"):
    """Fig. 10: App. D scalar flows, λ_s = 1, λ_d = 1/2, α_p = β = 1 (THEORY.md section 8).

    Left: w_a = 1 fixed, (w, w_p) plane; middle: the invariant submanifold w = w_p in (w, w_a);
    right: no predictor (w_p = 1) in (w, w_a).
    """
    ls, ld = 1.0, 0.5
    hyper = Hyper(alpha_p=1.0, eta=0.0, beta=1.0)

    def f(w, wp, wa):
        w, wp, wa = jnp.broadcast_arrays(*(jnp.asarray(a, float) for a in (w, wp, wa)))
        return mode_field(ModeState(w, wp, wa), hyper, ls, lambda_d=ld)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    lim = (-1.2, 1.2)
    # left: w_a = 1; hyperbola w_p w = λ_d/λ_s stable, origin saddle
    left = lambda W, P: (f(W, P, 1.0).w, f(W, P, 1.0).w_p)  # noqa: E731
    portrait(axes[0], left, lim, lim, fixed_points=[(0.0, 0.0, False)], labels=("w", "w_p"))
    wline = np.linspace(0.42, 1.2, 100)
    for sgn in (1, -1):
        axes[0].plot(sgn * wline, sgn * ld / ls / wline, "-", color=STABLE_COLOR, lw=2)
    axes[0].set_title("w_a = 1 fixed:\nhyperbola w_p w = λ_d/λ_s stable, origin saddle", fontsize=10)
    # middle: w = w_p (α_p = 1), (w, w_a): origin unstable, w = w_a = λ_d/λ_s stable
    mid = lambda W, A: (f(W, W, A).w, f(W, W, A).w_a)  # noqa: E731
    portrait(axes[1], mid, lim, lim, fixed_points=[(0.0, 0.0, False), (ld / ls, ld / ls, True)], labels=("w = w_p", "w_a"))
    axes[1].set_title("invariant w = w_p (α_p = 1):\norigin unstable, w = w_a = λ_d/λ_s stable", fontsize=10)
    # right: no predictor w_p = 1: only the origin, stable
    right = lambda W, A: (f(W, 1.0, A).w, f(W, 1.0, A).w_a)  # noqa: E731
    portrait(axes[2], right, lim, lim, fixed_points=[(0.0, 0.0, True)], labels=("w", "w_a"))
    axes[2].set_title("no predictor (w_p = 1):\nonly the origin, stable", fontsize=10)
    fig.suptitle("Fig. 10: Appendix D scalar dynamics, λ_s = 1, λ_d = 1/2, α_p = β = 1 (η = 0)")
    note(fig, "Nullclines: first coordinate solid grey, second dotted grey. Red: stable, green: unstable.")
    fig.tight_layout(rect=(0, 0.04, 1, 0.93))

    # checks: the field vanishes at the fixed points and the Jacobian signs match (jax.jacfwd)
    def jac(fun, x):
        return np.asarray(jax.jacfwd(lambda v: jnp.stack(fun(v[0], v[1])))(jnp.asarray(x, float)))

    ev_mid_fp = np.linalg.eigvals(jac(mid, [ld / ls, ld / ls])).real
    ev_right = np.linalg.eigvals(jac(right, [0.0, 0.0])).real
    ev_left = np.linalg.eigvals(jac(left, [0.0, 0.0])).real
    res = float(np.max(np.abs(np.stack(mid(ld / ls, ld / ls)))))
    # the origin of the middle panel is non-hyperbolic (eigenvalues 0, −β): show its instability by a run
    end = np.asarray(rk4(lambda y: jnp.stack(mid(y[0], y[1])), jnp.asarray([0.02, 0.02]), 600.0, dt=0.02))
    checks = [
        Check("App. D (Fig. 10 middle): field at w = w_a = λ_d/λ_s and its Jacobian eigenvalues",
              f"|field| = {res:.0e}; {np.round(ev_mid_fp, 3)}", "0; both < 0 (stable)",
              bool(res < 1e-15 and np.all(ev_mid_fp < 0))),
        Check("App. D (Fig. 10 middle): a start at (w, w_a) = (0.02, 0.02) leaves the origin and ends at",
              f"({end[0]:.6f}, {end[1]:.6f})", f"λ_d/λ_s = {ld / ls:g} (origin unstable)",
              bool(np.allclose(end, ld / ls, atol=1e-6))),
        Check("App. D (Fig. 10 left, right): origin eigenvalues with w_a = 1 fixed / without predictor",
              f"{np.round(ev_left, 3)} / {np.round(ev_right, 3)}", "saddle (signs differ) / stable (both < 0)",
              bool(ev_left.min() < 0 < ev_left.max() and np.all(ev_right < 0))),
    ]
    return fig, checks


def fig_alpha_p(size: str = "full"):
    """The roles of α_p (THEORY.md sections 7.3, 7.5): Obs#1 (a larger α_p shrinks the collapse basin at
    η = 0), Obs#2 (s_j barely grows for large α_p; s(∞) = s(0) + (p(∞)² − p(0)²)/α_p) and Obs#6 (a larger
    α_p loosens the alignment bound Eq. 17, i.e. raises min_t λ_min(K))."""
    tau, sigma2 = 1.0, 0.5  # UNCONFIRMED
    kappa = 1.0 + sigma2
    alphas = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    grid = 256 if size == "full" else 64
    P, S = np.meshgrid(np.linspace(-0.4, 1.2, grid), np.linspace(0.0, 1.0, grid))
    frac = []
    for a in alphas:
        y0 = ModePST(jnp.asarray(P), jnp.asarray(S), jnp.full(P.shape, tau))
        _, col = basin_map(pst_field, y0, 400.0, args=(Hyper(alpha_p=a), kappa, False), dt=0.05)
        frac.append(float(col.mean()))
    # Obs#2: one start (p0, s0), τ fixed, η = 0
    p0, s0 = 0.1, 0.05
    s_end, s_theory = [], []
    for a in alphas:
        sol = solve_modes(pst_field, ModePST(jnp.asarray(p0), jnp.asarray(s0), jnp.asarray(tau)), 4000.0,
                          args=(Hyper(alpha_p=a), kappa, False), ts=[4000.0], rtol=1e-10, atol=1e-12)
        s_end.append(float(sol.states.s[-1]))
        s_theory.append(float(theory.final_s_eta0(p0, s0, tau, kappa, a)))
    # Obs#6: BYOL modes (τ evolving from 0), η = 0.01, β = 0.4: min over t of min_j K_j
    rng = np.random.default_rng(6)
    pj = rng.uniform(0.05, 0.5, 6)
    y0 = ModeState(jnp.asarray(pj), jnp.asarray(pj), jnp.zeros(6))  # s = p², c_j = (1 − 1/α_p) p²
    lmin = []
    for a in alphas:
        sol = solve_modes(mode_field, y0, 300.0, args=(Hyper(alpha_p=a, eta=0.01, beta=0.4), kappa),
                          ts=np.linspace(0, 300, 601), rtol=1e-9, atol=1e-12)
        w, wp, wa = (np.asarray(v) for v in sol.states)
        s = w * w
        Kj = kappa * a * s / 2 + kappa * wp * wp - np.where(s > 0, wa * w / np.where(s > 0, s, 1), 0) * wp + 1.5 * 0.01
        lmin.append(float(Kj.min()))

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].semilogx(alphas, frac, "o-")
    axes[0].set_title("Obs#1 (η = 0):\ncollapsed fraction of the (p, s) grid", fontsize=10)
    axes[1].loglog(alphas, np.array(s_end) - s0, "o", label="measured s(∞) − s(0)")
    axes[1].loglog(alphas, np.array(s_theory) - s0, "k--", label="(τ²/κ² − p0²)/α_p (section 7.3)")
    axes[1].set_title(f"Obs#2 (η = 0):\ngrowth of s from (p0, s0) = ({p0}, {s0})", fontsize=10)
    axes[1].legend(fontsize=8)
    axes[2].semilogx(alphas, lmin, "o-")
    axes[2].axhline(0, color="k", lw=0.6)
    axes[2].set_title("Obs#6:\nmin over t of λ_min(K) (η = 0.01, β = 0.4)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("α_p")
        ax.minorticks_off()
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
    fig.suptitle("The relative predictor learning rate α_p (THEORY.md section 7.5, Obs#1, #2, #6)")
    note(fig, f"Chosen (UNCONFIRMED): τ = {tau} fixed for Obs#1-#2, σ² = {sigma2}; grid p ∈ [−0.4, 1.2] x s ∈ [0, 1], "
              f"{grid}²; Obs#6: 6 modes with s_j(0) = p_j(0)², p_j(0) ~ U(0.05, 0.5), τ(0) = 0.")
    fig.tight_layout(rect=(0, 0.05, 1, 0.92))
    err = float(np.max(np.abs(np.array(s_end) - np.array(s_theory))))
    checks = [
        Check("Obs#1: collapsed fraction of the (p, s) grid at η = 0 for α_p = 0.25 ... 8",
              ", ".join(f"{v:.3f}" for v in frac), "decreasing in α_p", bool(np.all(np.diff(frac) < 0))),
        Check("Obs#2 / section 7.3: s(∞) at η = 0 vs s(0) + (p(∞)² − p(0)²)/α_p, max error over α_p",
              f"{err:.1e}; growth {s_end[0] - s0:.3f} → {s_end[-1] - s0:.4f}", "0; growth ∝ 1/α_p",
              bool(err < 1e-6 and np.all(np.diff(s_end) < 0))),
        Check("Obs#6: min_t λ_min(K) for α_p = 0.25 ... 8 (Eq. 17 margin)", ", ".join(f"{v:.3f}" for v in lmin),
              "increasing in α_p", bool(np.all(np.diff(lmin) > 0))),
    ]
    return fig, checks
