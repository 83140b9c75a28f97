"""Discrete SGD hyperparameters and their dictionary to the flow's (t, alpha_p, eta, beta) (THEORY.md section 1).

A practitioner's step, per parameter θ with gradient g of the loss (torch.optim.SGD semantics,
weight decay coupled to the gradient, no dampening, no Nesterov):

    v <- momentum v + (g + wd θ)        θ <- θ - lr v        (predictor: lr_p, wd_p)
    Wa <- gamma_a Wa + (1 - gamma_a) W                     (EMA target, after the step)

For small lr this is Euler on Lemma 1 (Eqs. 2-4) with flow time dt = lr / (1 - momentum) per step:

| discrete | flow |
|---|---|
| lr, momentum | dt = lr / (1 - momentum) per step, t = dt x steps |
| lr_p | alpha_p = lr_p / lr |
| wd | eta = wd |
| wd_p | eta_p = alpha_p wd_p (the predictor's decay is scaled by its own lr) |
| gamma_a | beta = (1 - gamma_a) / dt |

The paper writes "actual weight decay η̄ = α η" with η̄ = 4e-4 (THEORY.md section 1); that reads η̄
as a per-step shrink factor. torch's `weight_decay=4e-4` is the coupled coefficient `wd` above, whose
per-step shrink is lr wd, so η = wd (not wd / lr). `from_flow` inverts `to_flow`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model import Hyper
from ..validate import as_array, check_finite, is_concrete

__all__ = ["SGD", "to_flow", "from_flow", "flow_time"]


def _check_range(name, a, lo, hi, lo_open=False, hi_open=False):
    if not is_concrete(a):
        return
    v = np.asarray(a)
    bad = (v <= lo if lo_open else v < lo) | (v >= hi if hi_open else v > hi)
    if np.any(bad):
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        shown = v if v.size == 1 else v[bad].ravel()[0]
        raise ValueError(f"{name} must be in {rng}, got {np.asarray(shown).item()!r}")


class SGD(eqx.Module):
    """Discrete hyperparameters of sampled training (THEORY.md sections 1, 10.2, 11).

    **Arguments:**

    - `lr`: online learning rate α > 0 (the paper's α = 0.03).
    - `lr_p`: predictor learning rate > 0; default `lr` (alpha_p = 1).
    - `wd`: coupled weight decay of W (torch `weight_decay`), >= 0.
    - `wd_p`: weight decay of Wp, >= 0; default `wd`.
    - `gamma_a`: EMA momentum (retention) γ_a of the target in [0, 1] (BYOL 0.996); 1 freezes the target;
      `ema=` is accepted for it (the ResNet level's `Config.ema` and the CLI's `--ema`; docs/vocabulary.md).
    - `momentum`: SGD momentum μ in [0, 1).

    DirectPred's retention ρ and boost ε are the predictor object's (`Setup(predictor=bd.DirectPred(eps=...,
    rho=...))`): the former keywords `rho=`, `eps=` here are refused with that advice.

    Fields may carry leading batch axes (for `jax.vmap` over hyperparameters).
    """

    lr: jax.Array
    lr_p: jax.Array
    wd: jax.Array
    wd_p: jax.Array
    gamma_a: jax.Array
    momentum: jax.Array

    def __init__(self, lr=0.01, lr_p=None, wd=0.0, wd_p=None, gamma_a=None, momentum=0.0, rho=None, eps=None, *,
                 ema=None):
        for name, v in (("rho", rho), ("eps", eps)):
            if v is not None:
                raise ValueError(f"{name} is the predictor's parameter, not SGD's: give it on the predictor object, "
                                 f"Setup(predictor=bd.DirectPred({name}={v!r}, ...))")
        if gamma_a is not None and ema is not None:
            raise ValueError(f"gamma_a and ema name the same EMA retention; give one, got {gamma_a!r} and {ema!r}")
        gamma_a = 0.996 if gamma_a is None and ema is None else (gamma_a if ema is None else ema)
        self.lr = as_array("lr", lr)
        self.lr_p = self.lr if lr_p is None else as_array("lr_p", lr_p)
        self.wd = as_array("wd", wd)
        self.wd_p = self.wd if wd_p is None else as_array("wd_p", wd_p)
        self.gamma_a = as_array("gamma_a", gamma_a)
        self.momentum = as_array("momentum", momentum)
        for name in ("lr", "lr_p", "wd", "wd_p", "gamma_a", "momentum"):
            check_finite(name, getattr(self, name))
        _check_range("lr", self.lr, 0, np.inf, lo_open=True)
        _check_range("lr_p", self.lr_p, 0, np.inf, lo_open=True)
        _check_range("wd", self.wd, 0, np.inf)
        _check_range("wd_p", self.wd_p, 0, np.inf)
        _check_range("gamma_a", self.gamma_a, 0, 1)
        _check_range("momentum", self.momentum, 0, 1, hi_open=True)


def to_flow(sgd: SGD) -> tuple[Hyper, jax.Array]:
    """The flow's hyperparameters and the flow time per step of `sgd` (THEORY.md section 1).

    **Returns:** `(Hyper(alpha_p, eta, beta, eta_p), dt)` with dt = lr/(1 - momentum),
    alpha_p = lr_p/lr, eta = wd, eta_p = alpha_p wd_p, beta = (1 - gamma_a)/dt.
    Works on traced and batched `SGD` (no validation is repeated then).
    """
    dt = sgd.lr / (1.0 - sgd.momentum)
    alpha_p = sgd.lr_p / sgd.lr
    beta = (1.0 - sgd.gamma_a) / dt
    h = object.__new__(Hyper)  # values derive from a validated SGD; skip re-validation (traced-safe)
    for name, v in (("alpha_p", alpha_p), ("eta", sgd.wd), ("beta", beta), ("eta_p", alpha_p * sgd.wd_p)):
        object.__setattr__(h, name, v)
    return h, dt


def from_flow(hyper: Hyper, dt, *, momentum=0.0) -> SGD:
    """The discrete `SGD` whose `to_flow` is `(hyper, dt)` at the given momentum (inverse of `to_flow`).

    lr = dt (1 - momentum), lr_p = alpha_p lr, wd = eta, wd_p = eta_p / alpha_p, gamma_a = 1 - beta dt.
    `ValueError` if beta dt > 1 (no EMA momentum in [0, 1] gives that rate).
    """
    dt = as_array("dt", dt)
    _check_range("dt", dt, 0, np.inf, lo_open=True)
    momentum = as_array("momentum", momentum)
    _check_range("momentum", momentum, 0, 1, hi_open=True)
    gamma_a = 1.0 - hyper.beta * dt
    if is_concrete(gamma_a) and np.any(np.asarray(gamma_a) < 0):
        raise ValueError(f"beta * dt must be <= 1 for an EMA momentum gamma_a in [0, 1], got {np.max(np.asarray(hyper.beta * dt))!r}")
    lr = dt * (1.0 - momentum)
    return SGD(lr=lr, lr_p=hyper.alpha_p * lr, wd=hyper.eta, wd_p=hyper.eta_p / hyper.alpha_p,
               gamma_a=gamma_a, momentum=momentum)


def flow_time(steps, sgd: SGD) -> jax.Array:
    """Flow time t = steps x lr / (1 - momentum) reached after `steps` SGD steps."""
    return jnp.asarray(steps) * to_flow(sgd)[1]
