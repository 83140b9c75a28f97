"""Minibatch SGD of the linear BYOL model on sampled data (DESIGN.md level 3; THEORY.md sections 1, 10, 11).

One step k (a practitioner's iteration, the order of the official code, THEORY.md section 10.2):

1. draw a batch of inputs and two views (or, with `batch=None`, use the exact moments);
2. DirectPred / DirectCopy: F̂ <- rho F̂ + (1 - rho) E_B[f fᵀ] over the online features (Eq. 19), rho the
   predictor object's (`Setup.predictor`, which carries every predictor parameter: eps, rho, freq, form);
3. loss with the current predictor and target T = stop_grad(Wa) (EMA) or stop_grad(W) (no EMA):
   - Euclidean, one view: ½ E_B‖Wp W x1 − T x2‖² (Eq. 1); symmetric: ¼ E_B[‖Wp W x1 − T x2‖² + ‖Wp W x2 − T x1‖²];
   - IsoLoss (docs/isoloss.md): the Euclidean loss's value, its output error r = Wp W x1 − T x2 sent to the
     projection W x1 without the factor Wpᵀ (`isoloss`); the step is `euclidean_direction(..., iso=True)`;
   - cosine, one view: E_B[1 − cos(Wp W x1, T x2)]; symmetric: the mean of both directions
     (the official loss −2cos − 2cos is 4x the symmetric one, i.e. 4x the learning rate);
4. SGD with momentum and coupled weight decay on W and Wp, written in flow units (`to_flow`):
   d = −∇ − eta θ (W), d = alpha_p(−∇) − eta_p Wp (Wp); v <- momentum v + d; θ <- θ + lr v;
   predictor `"symmetric"`: Wp <- (Wp + Wpᵀ)/2 after the step; `"identity"`: Wp = I;
   `"directpred"` / `"directcopy"`: Wp set from F̂ when k % freq == 0 (SGD steps in between);
5. target: `ema_form="practice"` Wa <- gamma_a Wa + (1 − gamma_a) W_new (BYOL's code);
   `"flow"` Wa <- Wa + dt beta (W_old − Wa), the Euler step of Eq. 4. No EMA: Wa <- W_new.

Batch centering (`Setup(center=...)`, BatchNorm's zero-mean step; docs/centering.md): the online projection
W x, the target projection T x and the predictor's output have their batch mean removed, the mean
differentiated through (`"center"`) or stop-gradiented (`"center-detach"`; the names of `Config.head_norm` at the
ResNet level, `CENTERS`); DirectPred's F̂ then accumulates the
centered features (the predictor's input). With the Euclidean loss the two give the same step: the residuals
r_b = Wp W x̃1_b − T x̃2_b are centered (Σ_b r_b = 0), so the mean's gradient term Wpᵀ(Σ_b r_b) x̄ᵀ/B vanishes,
and the step is Lemma 1's with the batch-centered moments; with the cosine loss they differ. `batch=None` with
centering uses the population-centered moments (B = ∞, `Source.centered_moments(None)`); `flow_moments(source,
setup)` gives the moments of the flow a run follows in expectation.

With the Euclidean loss, `batch=None`, momentum 0, `ema_form="flow"` and a learned or identity
predictor, one step is exactly one Euler step of Lemma 1 (`simulate(..., dt=lr)`), bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import predictors as P
from ..model import Data, State
from ..solution import DIVERGED, STATUS_NAMES, SUCCEEDED, check_number
from ..stepper import blown
from ..validate import brief, check_key
from .data import Source
from .dictionary import SGD, to_flow

__all__ = ["Setup", "TrainState", "Run", "train", "init_train_state", "sgd_step", "euclidean_direction",
           "cosine_loss", "euclidean_loss", "isoloss", "center_batch", "flow_moments", "LOSSES", "VIEWS", "PREDICTORS",
           "EMA_FORMS", "CENTERS", "predictor_of"]

LOSSES = P.LOSSES  # the one list of the loss names (byoldyn.predictors); every one is trained here
VIEWS = ("one", "symmetric")
PREDICTORS = tuple(P.PREDICTORS)  # the registry's names (byoldyn.predictors)
EMA_FORMS = ("practice", "flow")
#: batch centering of the projections (BatchNorm's zero-mean step): off, the batch mean differentiated, the batch
#: mean detached; the one list of these names (the ResNet level's `Config.head_norm` is "bn" or one of them)
CENTERS = ("none", "center", "center-detach")


class Setup(eqx.Module):
    """The choices of a sampled run (changing them recompiles, except array-valued predictor parameters).

    - `loss`: `"euclidean"` (Eq. 1), `"cosine"` (ℓ2-normalized, as real BYOL) or `"isoloss"` (Eq. 1 with the
      output error sent to W x1 without the factor Wpᵀ, docs/isoloss.md): `LOSSES`.
    - `views`: `"one"` (x1 online, x2 target) or `"symmetric"` (both directions averaged).
    - `predictor`: a `byoldyn.predictors` object (`bd.DirectPred(eps=0.2, rho=0.5, freq=2)`) or its name
      (`"learned"`, `"symmetric"`, `"identity"`, `"directpred"` (Eq. 18), `"directcopy"`, ...): the object
      carries every predictor parameter (eps, rho, freq, form) to the step.
    - `ema`: EMA target (BYOL) or target = W (SimSiam, "no EMA").
    - `ema_form`: `"practice"` or `"flow"` (see the module docstring).
    - `batch`: minibatch size, or None for exact expectations (Euclidean loss and IsoLoss).
    - `center`: `"none"`, `"center"` or `"center-detach"` (`CENTERS`): batch centering of the projections and the
      predictor's output, the batch mean differentiated through or detached (module docstring; docs/centering.md).
    - `freq`, `directpred_form`: shorthands of the predictor's `freq` and `form` (None: not given); with a name
      they build the object, with an object they must agree with it (`ValueError` otherwise).
    """

    loss: str = eqx.field(static=True)
    views: str = eqx.field(static=True)
    predictor: P.Predictor
    ema: bool = eqx.field(static=True)
    ema_form: str = eqx.field(static=True)
    batch: int | None = eqx.field(static=True)
    center: str = eqx.field(static=True)

    def __init__(self, loss="euclidean", views="one", predictor="learned", ema=True, ema_form="practice", batch=128,
                 freq=None, directpred_form=None, center="none"):
        self.loss, self.views, self.ema, self.ema_form, self.batch = loss, views, ema, ema_form, batch
        self.center = center
        for name, allowed in (("loss", LOSSES), ("views", VIEWS), ("ema_form", EMA_FORMS), ("center", CENTERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if isinstance(predictor, str) and P.ALIASES.get(predictor, predictor) not in PREDICTORS:
            raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
        self.predictor = P.as_predictor(predictor, freq=freq, form=directpred_form)
        if not isinstance(self.ema, bool):
            raise ValueError(f"ema must be True or False, got {self.ema!r}")
        b = self.batch
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1):
            raise ValueError(f"batch must be a positive integer or None (exact expectations), got {b!r}")
        if b is not None and b < 2 and self.center != "none":
            raise ValueError(f"center={self.center!r} needs batch >= 2 (a batch of one centers to zero), got {b!r}")
        if b is None and self.loss == "cosine":
            raise ValueError("batch=None (exact expectations) needs loss='euclidean' or 'isoloss': the cosine loss "
                             "has no closed form in the second moments")


class TrainState(eqx.Module):
    """Weights, SGD momentum buffers (in flow units), DirectPred's F̂ and the step counter."""

    W: jax.Array
    Wp: jax.Array
    Wa: jax.Array
    vW: jax.Array
    vWp: jax.Array
    Fhat: jax.Array
    step: jax.Array

    @property
    def state(self) -> State:
        return State.unchecked(self.W, self.Wp, self.Wa)


class Run(eqx.Module):
    """Result of `train`.

    - `steps`: the SGD step index of each save, (T,); `ts`: their flow times steps x dt.
    - `states`: a `State` with a leading save axis (None when `observe` was given).
    - `observed`: the pytree of `observe(t, state)` at each save (else None).
    - `final`: the `TrainState` after the last good step.
    - `status`: `SUCCEEDED` or `DIVERGED` (state non-finite or above `max_norm`; later saves NaN).
    - `num_steps`: good steps taken (the step count of `final`): a diverged run failed at its step
      `num_steps` (0-based), every save at a step <= `num_steps` holds data and every later save is NaN.
    """

    steps: jax.Array
    ts: jax.Array
    states: State | None
    observed: Any
    final: TrainState
    status: jax.Array
    num_steps: jax.Array

    def status_names(self) -> np.ndarray:
        return np.asarray(STATUS_NAMES, dtype=object)[np.asarray(self.status)]


def _T(A):
    return jnp.swapaxes(A, -1, -2)


def _sym(A):
    return 0.5 * (A + _T(A))


def init_train_state(state0: State, setup: Setup) -> TrainState:
    """The initial `TrainState`: the variant's initial Wp (I for identity, symmetrized for symmetric),
    Wa = W without EMA, zero momentum buffers, F̂ = 0 (the first step sets F̂ = E_B[ffᵀ])."""
    W, Wp, Wa = state0.W, state0.Wp, state0.Wa
    if setup.predictor.name == "identity":
        Wp = jnp.broadcast_to(jnp.eye(Wp.shape[-1], dtype=Wp.dtype), Wp.shape)
    elif setup.predictor.name == "symmetric":
        Wp = _sym(Wp)
    if not setup.ema:
        Wa = W
    return TrainState(W, Wp, Wa, jnp.zeros_like(W), jnp.zeros_like(Wp), jnp.zeros_like(Wp),
                      jnp.zeros(W.shape[:-2], jnp.int32))


def euclidean_direction(W, Wp, T, right_S: Callable, right_X: Callable, hyper, iso: bool = False):
    """Flow-unit descent directions of the Euclidean loss from second moments (Lemma 1 form).

    G = −Wp W S^s + T S^d with S^s = E[x_on x_onᵀ], S^d = E[x_tg x_onᵀ] (given as `right_S(A) = A S^s`,
    `right_X(A) = A S^d`); dW = Wpᵀ G − eta W (Eq. 3), dWp = alpha_p G Wᵀ − eta_p Wp (Eq. 2). `iso`: IsoLoss,
    dW = G − eta W (Eq. 3 without Wpᵀ, docs/isoloss.md; `isoloss` is its autodiff form).
    The expression order is that of `byoldyn.vector_field`, so exact moments give its bits.
    """
    PW = Wp @ W
    G = -right_S(PW) + right_X(T)
    dW = (G if iso else _T(Wp) @ G) - hyper.eta * W
    dWp = hyper.alpha_p * (G @ _T(W)) - hyper.eta_p * Wp
    return dW, dWp


def _normalize(v):
    n = jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
    return v / jnp.maximum(n, 1e-12)  # torch F.normalize


def _check_center(center):
    if not isinstance(center, str) or center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {brief(center)}")


def center_batch(v, center: str = "center"):
    """BatchNorm's zero-mean step over the batch (axis −2 of (..., B, n)): v − mean_b v (`"center"`),
    v − stop_gradient(mean_b v) (`"center-detach"`, the same values, no gradient through the mean) or v
    (`"none"`). `ValueError` for another `center`."""
    _check_center(center)
    if center == "none":
        return v
    m = jnp.mean(v, axis=-2, keepdims=True)
    return v - (jax.lax.stop_gradient(m) if center == "center-detach" else m)


def _branches(W, Wp, T, xa, xb, center):
    """(p, z): the predictor's output Wp W xa and the target's T xb, batch-centered as `center` says (the online
    projection W xa before the predictor, then the predictor's output; the target projection)."""
    if center == "none":
        return xa @ _T(Wp @ W), xb @ _T(T)
    p = center_batch(center_batch(xa @ _T(W), center) @ _T(Wp), center)
    return p, center_batch(xb @ _T(T), center)


def euclidean_loss(W, Wp, T, x1, x2, views, center="none"):
    """The Euclidean loss of a batch (Eq. 1's sample form), ½ mean_b ‖p_b − z_b‖² (`views="one"`) or the mean of
    both orders of the views (¼ of the summed squares), with `center_batch` applied as `Setup.center`. `train`
    steps with the closed form `euclidean_direction` on the (centered) batch moments; this autodiff form checks it
    (for `"center"` and `"center-detach"` alike: the residuals are centered, module docstring)."""
    _check_center(center)

    def one(xa, xb):
        p, z = _branches(W, Wp, T, xa, xb, center)
        return 0.5 * jnp.mean(jnp.sum((p - z) ** 2, axis=-1))

    return one(x1, x2) if views == "one" else 0.5 * (one(x1, x2) + one(x2, x1))


def isoloss(W, Wp, T, x1, x2, views, center="none"):
    """IsoLoss of a batch (Halvagal, Laborieux & Zenke 2023; docs/isoloss.md): `euclidean_loss` with the prediction
    `byoldyn.predictors.iso_output(y, z)`, y the predictor applied to the detached projection z = W x1 (centered as
    `center` says). Its value is the Euclidean loss's; its gradient in W is mean_b r_b x1_bᵀ with the output error
    r_b = p_b − (T x2)_b (no factor Wpᵀ), in Wp the Euclidean loss's. `train` steps with the closed form
    `euclidean_direction(..., iso=True)` on the batch moments; this autodiff form checks it."""
    _check_center(center)

    def one(xa, xb):
        z = center_batch(xa @ _T(W), center)
        y = center_batch(jax.lax.stop_gradient(z) @ _T(Wp), center)
        p = P.iso_output(y, z)
        return 0.5 * jnp.mean(jnp.sum((p - center_batch(xb @ _T(T), center)) ** 2, axis=-1))

    return one(x1, x2) if views == "one" else 0.5 * (one(x1, x2) + one(x2, x1))


def cosine_loss(W, Wp, T, x1, x2, views, center="none"):
    """The normalised (cosine) loss of a batch, 1 − ⟨p/‖p‖, z/‖z‖⟩ averaged over samples (THEORY.md 10.2, 11):
    p = Wp W x1, z = T x2 with the target `T` (stop-gradient is the caller's); `views="one"` that term, else
    the symmetrized mean of both orders of the views (x1, x2), (x2, x1). `center`: `center_batch` of the
    projections and the predictor's output before the normalisation (`Setup.center`)."""
    _check_center(center)

    def one(xa, xb):
        p, z = _branches(W, Wp, T, xa, xb, center)
        p, z = _normalize(p), _normalize(z)
        return jnp.mean(1.0 - jnp.sum(p * z, axis=-1))

    return one(x1, x2) if views == "one" else 0.5 * (one(x1, x2) + one(x2, x1))


def _directions(ts: TrainState, Wp, T, hyper, key, source: Source, data: Data, setup: Setup):
    """(dW, dWp, d) where d = E[f fᵀ] of the online features (for F̂)."""
    W = ts.W
    iso = setup.loss == "isoloss"
    if setup.batch is None:
        d = data.right(W, "S") @ _T(W)
        dW, dWp = euclidean_direction(W, Wp, T, lambda A: data.right(A, "S"), lambda A: data.right(A, "X"), hyper,
                                      iso)
        return dW, dWp, d
    x1, x2 = source.sample(key, setup.batch)
    B = setup.batch
    if setup.loss == "cosine":  # the loss centers (the mean's gradient matters there); F̂ reads centered features
        gW, gWp = jax.grad(cosine_loss, argnums=(0, 1))(W, Wp, jax.lax.stop_gradient(T), x1, x2, setup.views,
                                                         setup.center)
        x1, x2 = center_batch(x1, setup.center), center_batch(x2, setup.center)
        Son = _T(x1) @ x1 / B if setup.views == "one" else 0.5 * (_T(x1) @ x1 / B + _T(x2) @ x2 / B)
        return -gW - hyper.eta * W, hyper.alpha_p * (-gWp) - hyper.eta_p * Wp, W @ Son @ _T(W)
    # Euclidean and IsoLoss: W x̃ = W x − W x̄, so centering the projections is centering the views (both modes,
    # docstring; for IsoLoss the centered output error r is sent to the centered projection, Σ_b r_b = 0 again)
    x1, x2 = center_batch(x1, setup.center), center_batch(x2, setup.center)
    if setup.views == "one":
        Sd = _T(x2) @ x1 / B
        Ss = _T(x1) @ x1 / B
        Son = Ss
    else:
        S11, S22 = _T(x1) @ x1 / B, _T(x2) @ x2 / B
        Ss = 0.5 * (S11 + S22)
        Sd = 0.5 * (_T(x2) @ x1 + _T(x1) @ x2) / B
        Son = Ss
    d = W @ Son @ _T(W)
    dW, dWp = euclidean_direction(W, Wp, T, lambda A: A @ Ss, lambda A: A @ Sd, hyper, iso)
    return dW, dWp, d


def predictor_of(setup: Setup, sgd: SGD | None = None) -> P.Predictor:
    """The `byoldyn.predictors` object of a run: `setup.predictor`, which carries its own eps, rho, freq and
    form (THEORY.md 10.1-10.2); `sgd` is not read (kept for the former signature)."""
    return setup.predictor


def flow_moments(source: Source, setup: Setup) -> Data:
    """The moments of the flow that a run of `setup` on `source` follows in expectation (Euclidean loss):
    `source.moments()` without centering (the batch moments are unbiased at any B), else
    `source.centered_moments(setup.batch)` (Lemma 1 on the batch-centered moments, docs/centering.md, Eq. C2;
    `batch=None`: B = ∞, the moments `train` steps with). `ValueError` for arguments of other types."""
    if not isinstance(source, Source) or not isinstance(setup, Setup):
        raise ValueError(f"flow_moments takes (Source, Setup), got ({type(source).__name__}, "
                         f"{type(setup).__name__})")
    return source.moments() if setup.center == "none" else source.centered_moments(setup.batch)


def sgd_step(ts: TrainState, sgd: SGD, source: Source, data: Data, key, setup: Setup) -> TrainState:
    """One SGD iteration (module docstring, steps 1-5). Unbatched; traced-safe; no validation."""
    hyper, dt = to_flow(sgd)
    pred = setup.predictor
    eye = jnp.eye(ts.Wp.shape[-1], dtype=ts.Wp.dtype)
    Wp = eye if pred.name == "identity" else ts.Wp
    T = ts.Wa if setup.ema else ts.W
    dW, dWp, d = _directions(ts, Wp, T, hyper, key, source, data, setup)
    Fhat = P.fhat_update(ts.Fhat, d, pred.rho, ts.step == 0) if pred.direct else ts.Fhat
    vW = sgd.momentum * ts.vW + dW
    W = ts.W + sgd.lr * vW
    if pred.name == "identity":
        vWp, Wp_new = ts.vWp, ts.Wp
    else:
        vWp = sgd.momentum * ts.vWp + dWp
        Wp_new = ts.Wp + sgd.lr * vWp
        if pred.name == "symmetric":
            Wp_new = _sym(Wp_new)
        elif pred.direct:
            Wp_new = jnp.where(ts.step % pred.freq == 0, pred.matrix(Fhat), Wp_new)
    if not setup.ema:
        Wa = W
    elif setup.ema_form == "flow":
        Wa = ts.Wa + dt * (hyper.beta * (ts.W - ts.Wa))
    else:
        Wa = sgd.gamma_a * ts.Wa + (1.0 - sgd.gamma_a) * W
    return TrainState(W, Wp_new, Wa, vW, vWp, Fhat, ts.step + 1)


def saved_loop(sgd, source, data, key, setup, observe, max_norm):
    """`run(ts, alive, n_save, save_every) -> ((ts, alive), saves)`: `train`'s loop (traced), shared with
    `byoldyn.reset.train_with_resets`: n_save intervals of save_every `sgd_step`s (step k draws with
    `fold_in(key, k)`; a step that blows up or leaves a non-finite state is not taken and ends the run), saving the
    state (or `observe(t, state)`) at the start and after each interval, NaN once the run has stopped."""
    _, dt = to_flow(sgd)

    def one(_, carry):
        ts, alive = carry
        new = sgd_step(ts, sgd, source, data, jax.random.fold_in(key, ts.step), setup)
        ok = alive & ~blown((new.W, new.Wp, new.Wa), max_norm)
        ts = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, ts)
        return ts, ok

    def obs(ts, alive):
        y = ts.state if observe is None else observe(ts.step.astype(dt.dtype) * dt, ts.state)
        return jax.tree.map(lambda a: jnp.where(alive & jnp.isfinite(a), a, jnp.nan), y)  # never inf

    def run(ts, alive, n_save, save_every):
        def interval(carry, _):
            carry = jax.lax.fori_loop(0, save_every, one, carry)
            return carry, obs(*carry)

        y0 = obs(ts, alive)
        carry, ys = jax.lax.scan(interval, (ts, alive), None, length=n_save)
        return carry, jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)

    return run


@eqx.filter_jit
def _train(ts0, sgd, source, data, key, n_save, save_every, setup, observe, max_norm):
    _, dt = to_flow(sgd)
    run = saved_loop(sgd, source, data, key, setup, observe, max_norm)
    (ts, alive), ys = run(ts0, jnp.ones((), bool), n_save, save_every)
    steps = ts0.step + jnp.arange(n_save + 1, dtype=ts0.step.dtype) * save_every
    status = jnp.where(alive, SUCCEEDED, DIVERGED).astype(jnp.int32)
    return steps, steps.astype(dt.dtype) * dt, ys, ts, status


def check_run(state0, sgd, source, key, steps, setup, observe, max_norm, name: str = "train") -> Setup:
    """`train`'s validation of its common arguments (shared with `train_with_resets`); returns the `Setup`."""
    setup = Setup() if setup is None else setup
    if not isinstance(setup, Setup):
        raise ValueError(f"setup must be a Setup, got {type(setup).__name__}")
    if not isinstance(state0, State) or not isinstance(sgd, SGD) or not isinstance(source, Source):
        raise ValueError(f"{name} takes (State, SGD, Source, key, steps) as its first arguments")
    if state0.n1 != source.n1:
        raise ValueError(f"W has n1 = {state0.n1} columns but the source is {source.n1}-dimensional")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    check_number("max_norm", max_norm, positive=True, finite=False)
    check_key(key)
    if observe is not None and not callable(observe):
        raise ValueError(f"observe must be a function observe(t, state) or None, got {brief(observe)}")
    return setup


def train(
    state0: State,
    sgd: SGD,
    source: Source,
    key,
    steps: int,
    *,
    setup: Setup | None = None,
    save_every: int | None = None,
    observe: Callable[[jax.Array, State], Any] | None = None,
    max_norm: float = 1e8,
    resume: TrainState | None = None,
) -> Run:
    """Train the linear model (W, Wp, Wa) by minibatch SGD on samples of `source` for `steps` steps.

    **Arguments:**

    - `state0`: initial `State` (unbatched; wrap `train` in `jax.vmap` for seeds/hyperparameters).
    - `sgd`: discrete hyperparameters (`SGD`); `source`: the data and augmentation (`Source`).
    - `key`: PRNG key; step k uses `fold_in(key, k)`.
    - `setup`: the static choices (`Setup()`: Euclidean, one view, learned Wp, EMA, batch 128).
    - `save_every`: saves at steps 0, save_every, ..., steps (must divide `steps`; default steps/100).
    - `observe`: `observe(t, state) -> pytree` saved instead of the state, t = flow time (e.g.
      `observables.standard(hyper, data, state0)` with `hyper, _ = to_flow(sgd)`).
    - `max_norm`: a run whose weights exceed it or become non-finite stops, `status = DIVERGED`.
    - `resume`: continue from a `Run.final` (momentum, F̂ and the step count carry over, and step k
      still uses `fold_in(key, k)`), so chunked training with the same key equals one long run.

    **Returns:** a `Run`. The whole loop is one jitted `lax.scan`.
    """
    setup = check_run(state0, sgd, source, key, steps, setup, observe, max_norm)
    save_every = max(1, steps // 100) if save_every is None else save_every
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1 \
            or steps % save_every:
        raise ValueError(f"save_every must be a positive integer dividing steps = {steps}, got {save_every!r}")
    if resume is not None and not isinstance(resume, TrainState):
        raise ValueError(f"resume must be a TrainState (a Run.final), got {type(resume).__name__}")
    ts0 = init_train_state(state0, setup) if resume is None else resume
    data = flow_moments(source, setup)  # read by batch=None only
    steps_, ts_, ys, final, status = _train(ts0, sgd, source, data, key, steps // save_every,
                                            int(save_every), setup, observe, float(max_norm))
    states, observed = (ys, None) if observe is None else (None, ys)
    return Run(steps_, ts_, states, observed, final, status, final.step)
