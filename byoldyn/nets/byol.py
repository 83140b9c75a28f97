"""BYOL / SimSiam / DirectPred training step on a real network (THEORY.md sections 10.2 and 11).

Style of deepmind-research/byol: the experiment state is a NamedTuple of pytrees (`TrainState`), the
target update is one `tree_map` (`ema_update`), the loss has an explicit `stop_gradient`, and
augmentations run on device. A step is two jitted programs: the input pipeline (`BYOL.views`, one program per
augmentation and batch shape, shared by every config) and the update (`BYOL.update`). Per step (official order,
section 10.2):

1. two augmented views x1, x2 of the batch; online projections f1, f2 (the predictor inputs);
2. `F̂ <- rho F̂ + (1 - rho) E[f fᵀ]` over both views, detached (Eq. 19; the first step sets F̂);
3. loss `mean_b [ℓ(Wp f1, z2) + ℓ(Wp f2, z1)]`, targets z from the target net (BN in train mode) under
   `stop_gradient`; ℓ = 2 - 2 cos (cosine) or ‖y - z‖² (euclidean); isoloss: ‖y - z‖² on the prediction
   `iso_output(predictor(sg(f)), f)`, the output error sent to f without the predictor's Jacobian (docs/isoloss.md);
4. SGD (momentum, weight decay as torch) on the online net and, separately, on the predictor;
5. `symmetric` predictor: Wp <- (Wp + Wpᵀ)/2; DirectPred / DirectCopy: every `freq` steps Wp <- f(F̂);
6. target <- m target + (1 - m) online (parameters only, not BN statistics); m = 0: target = online;
7. `config.predictor_reset = N`: after every N-th step the predictor is drawn afresh (`BYOL.fresh_predictor`)
   and its optimizer's momentum zeroed.

Options beyond the official code (`byoldyn.nets.schedule`): a warmup / cosine learning rate
(both optimizers, the predictor's peak being alpha_p lr), BYOL's EMA schedule m_k, and bfloat16 compute
(`config.dtype`; the loss, F̂ and all state stay float32).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ..predictors import fhat_update, iso_output, update_correlation
from .augment import Augment, augment_batch, eval_transform
from .config import Config
from .heads import Projector, make_predictor, set_predictor_matrix, symmetrize_predictor
from .resnet import ResNet
from .schedule import ema_at, lr_schedule

#: F̂'s retention (Eq. 19) for the logged correlation of a predictor that has no rho of its own (DirectPred's default)
FHAT_RHO = 0.3
#: folded into the seed's key before the step count: the keys of `config.predictor_reset`'s fresh predictors
RESET_TAG = 0x7E5E7

__all__ = ["Siamese", "TrainState", "BYOL", "build", "ema_update", "pair_loss", "byol_loss", "make_optimizer",
           "reset_key", "RESET_TAG"]


class Siamese(nnx.Module):
    """Backbone + projector: images -> (features h, projections f). Used for the online and target nets."""

    def __init__(self, config: Config, *, rngs: nnx.Rngs):
        dt = jnp.bfloat16 if config.dtype == "bfloat16" else None
        self.encoder = ResNet(config.stage_sizes, width=config.width, stem=config.stem, dtype=dt, rngs=rngs)
        self.projector = Projector(self.encoder.dim, config.proj_hidden, config.proj_dim, dtype=dt,
                                   out_bn=config.proj_out_bn, norm=config.head_norm, rngs=rngs)

    def __call__(self, x):
        h = self.encoder(x)
        f = self.projector(h)
        return h.astype(jnp.float32), f.astype(jnp.float32)


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointed whole).

    `online`/`target`/`pred`: parameters (nnx.State); `*_bn`: BatchNorm running statistics;
    `opt`/`pred_opt`: optax states; `corr`: F̂ (proj_dim, proj_dim); `cross`: the same running estimate (Eq. 19,
    same retention) of E[z_target z_onlineᵀ] across the two views of an image, symmetrised (the mode theory's
    τ X Wᵀ: `observables` "two_view_ratio"); `step`: int32 scalar.
    """

    step: jax.Array
    online: Any
    online_bn: Any
    target: Any
    target_bn: Any
    pred: Any
    pred_bn: Any
    opt: Any
    pred_opt: Any
    corr: jax.Array
    cross: jax.Array


def ema_update(target, online, m):
    """`target <- m target + (1 - m) online`, leaf by leaf (BYOL's EMA, THEORY.md section 11).

    Called eagerly it equals the formula in the leaves' dtype bit for bit (coefficients `m` and `1 - m`
    rounded once to that dtype). Inside the jitted step XLA's CPU backend may contract the multiply-add
    into a fused multiply-add: then the result differs from the formula by less than the rounding
    error of the two products, eps * (m |target| + (1 - m) |online|).
    """
    return jax.tree.map(lambda t, o: m * t + (1.0 - m) * o, target, online)


def reset_key(seed: int, step) -> jax.Array:
    """The key of the predictor drawn afresh when the step count reaches `step` (`Config.predictor_reset`):
    `fold_in(fold_in(key(seed), RESET_TAG), step)`, a function of the run's seed and the step alone."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed, impl="rbg"), RESET_TAG), step)


def _normalize(x):
    n = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(n, 1e-12)


def pair_loss(y: jax.Array, z: jax.Array, kind: str = "cosine") -> jax.Array:
    """Per-sample loss between predictions y and targets z, (B, d) -> (B,).

    `"cosine"`: `2 - 2 cos(y, z)` (`F.normalize` with eps 1e-12); `"euclidean"` and `"isoloss"`: `‖y - z‖²`
    (IsoLoss's y is `byoldyn.predictors.iso_output`, which `BYOL.loss` builds; docs/isoloss.md).
    The official code's `-2 cos` differs by a constant only (section 10.2).
    """
    if kind == "cosine":
        return 2.0 - 2.0 * jnp.sum(_normalize(y) * _normalize(z), axis=-1)
    return jnp.sum((y - z) ** 2, axis=-1)


def byol_loss(y1, y2, z1, z2, kind: str = "cosine") -> jax.Array:
    """The symmetric BYOL loss `mean_b [ℓ(y1, z2) + ℓ(y2, z1)]` (section 10.2, step 5)."""
    return jnp.mean(pair_loss(y1, z2, kind) + pair_loss(y2, z1, kind))


def make_optimizer(kind: str, lr, momentum: float, wd: float) -> optax.GradientTransformation:
    """torch-style SGD (`wd * θ` added to the gradient before momentum) or optax's LARS; `lr` a float or
    an optax schedule."""
    if kind == "lars":
        return optax.lars(lr, weight_decay=wd, momentum=momentum)
    return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=momentum or None))


_BN_MOMENTUM = 0.9  # every BatchNorm of resnet.py and heads.py (torch's momentum 0.1)


def _split(module):
    return nnx.split(module, nnx.Param, nnx.BatchStat)


class BYOL:
    """The static half of a run: graph definitions, optimizers and jitted functions for one `Config`.

    Use `build(config)` (cached, so equal configs share compiled code). `init(key)` gives a
    `TrainState`; `step(state, images, key)` one training step on a uint8 batch (B, H, W, 3) returning
    `(state, metrics)`, that is `update(state, views(images, key))`, both jitted; `loss(...)` the loss as a
    function of every parameter set (for tests); `features(state, images)` frozen encoder features (eval-mode
    BN) for evaluation.
    """

    def __init__(self, config: Config):
        self.config = config
        c = config
        net = nnx.eval_shape(lambda: Siamese(c, rngs=nnx.Rngs(0)))
        self.net_def = _split(net)[0]
        self.net_eval_def = _split(nnx.view(net, use_running_average=True))[0]
        self.feature_dim = net.encoder.dim
        pred = nnx.eval_shape(lambda: make_predictor(c.predictor, c.proj_dim, bias=c.bias, hidden=c.pred_hidden,
                                                     norm=c.head_norm, rngs=nnx.Rngs(0)))
        self.pred_def = _split(pred)[0]
        self.lr = lr_schedule(c, c.lr)
        self.opt = make_optimizer(c.optimizer, self.lr, c.momentum, c.wd)
        self.pred_opt = make_optimizer(c.optimizer, lr_schedule(c, c.alpha_p * c.lr), c.momentum, c.eta_p)
        self.update = jax.jit(self._update)
        self.features = jax.jit(self._features)

    # ---- construction -------------------------------------------------------------------------
    def init(self, key: jax.Array) -> TrainState:
        """Fresh state: online, target (independent or copied, per `config.target_init`), predictor."""
        return self._init(key)

    @functools.cached_property
    def _init(self):
        c = self.config
        net = jax.jit(lambda k: _split(Siamese(c, rngs=nnx.Rngs(k)))[1:])
        prd = jax.jit(self._new_predictor)

        @jax.jit
        def rest(online, pred):
            if c.symmetrize:
                pred = symmetrize_predictor(pred)
            corr = jnp.zeros((c.proj_dim, c.proj_dim), jnp.float32)
            return pred, self.opt.init(online), self.pred_opt.init(pred), corr

        def init(key):
            ko, kt, kp = jax.random.split(key, 3)
            online, online_bn = net(ko)
            if c.target_init == "copy" or c.ema == 0:
                target, target_bn = jax.tree.map(jnp.copy, (online, online_bn))
            else:
                target, target_bn = net(kt)
            pred, pred_bn = prd(kp)
            pred, opt, pred_opt, corr = rest(online, pred)
            return TrainState(jnp.zeros((), jnp.int32), online, online_bn, target, target_bn, pred, pred_bn,
                              opt, pred_opt, corr, corr)

        return init

    def _new_predictor(self, key):
        """`(pred, pred_bn)`: the predictor as its initialiser draws it from `key` (before any symmetrization)."""
        c = self.config
        return _split(make_predictor(c.predictor, c.proj_dim, bias=c.bias, hidden=c.pred_hidden, norm=c.head_norm,
                                     rngs=nnx.Rngs(key)))[1:]

    def fresh_predictor(self, step, pred_opt):
        """`(pred, pred_bn, pred_opt)` of `config.predictor_reset` at step count `step`: the predictor drawn by
        its own initialiser from `reset_key(seed, step)` (symmetrized for the symmetric predictor, as at
        init), its BN statistics (mlp) at their initial values, and `pred_opt` with its momentum zeroed and
        its integer leaves (the schedule's step count) kept."""
        c = self.config
        pred, pred_bn = self._new_predictor(reset_key(c.seed, step))
        if c.symmetrize:
            pred = symmetrize_predictor(pred)
        new = self.pred_opt.init(pred)
        opt = jax.tree.map(lambda n, o: o if jnp.issubdtype(o.dtype, jnp.integer) else n, new, pred_opt)
        return pred, pred_bn, opt

    # ---- forward passes -----------------------------------------------------------------------
    def apply(self, params, bn, x, *, train: bool = True):
        """Backbone + projector on images x: `(h, f, new_bn)`."""
        net = nnx.merge(self.net_def if train else self.net_eval_def, params, bn, copy=True)
        h, f = net(x)
        return h, f, nnx.state(net, nnx.BatchStat)

    def predict(self, pred, pred_bn, f):
        """The predictor on projections f: `(y, new_pred_bn)`."""
        p = nnx.merge(self.pred_def, pred, pred_bn, copy=True)
        y = p(f)
        return y, nnx.state(p, nnx.BatchStat)

    def _two_views(self, fn, params, bn, xs):
        """`fn(params, bn, x)` on both views `xs` (2, B, ...) in one vmapped pass.

        Each view gets its own BatchNorm batch statistics, as the official code's two separate forward
        passes; the running statistics are then combined exactly as two sequential updates:
        `s <- m s1 + s2 - m s0` (with s_i = m s0 + (1 - m) mu_i, momentum m = 0.9 for every BN here).
        """
        *out, nbn = jax.vmap(fn, in_axes=(None, None, 0))(params, bn, xs)
        seq = jax.tree.map(lambda s0, s: _BN_MOMENTUM * s[0] + s[1] - _BN_MOMENTUM * s0, bn, nbn)
        return (*out, seq)

    def loss(self, online, pred, target, online_bn, pred_bn, target_bn, xs):
        """The BYOL loss as a function of the online, predictor and target parameters.

        `xs` stacks the two views, (2, B, H, W, 3). **Returns:** `(loss, aux)` with aux holding the new BN
        statistics, the projections `f` (2, B, d) and the backbone features `h` (2, B, D). With
        `config.ema == 0` the target is the online net itself (its outputs are reused);
        `config.stop_grad` wraps the targets in `stop_gradient`.
        """
        c = self.config
        h, f, bn = self._two_views(self.apply, online, online_bn, xs)
        iso = c.loss == "isoloss"  # the predictor sees sg(f); iso_output sends the output error to f (docs/isoloss.md)
        y, pbn = self._two_views(self.predict, pred, pred_bn, jax.lax.stop_gradient(f) if iso else f)
        if iso:
            y = iso_output(y, f)
        if c.ema == 0:
            z, tbn = f, target_bn
        else:
            _, z, tbn = self._two_views(self.apply, target, target_bn, xs)
        if c.stop_grad:
            z = jax.lax.stop_gradient(z)
        loss = byol_loss(y[0], y[1], z[0], z[1], c.loss)
        return loss, dict(online_bn=bn, pred_bn=pbn, target_bn=tbn, f=f, h=h, z=z)

    def views(self, images, key):
        """Two independently augmented float32 views of a uint8 batch, stacked: (2, B, size, size, 3)."""
        return _views(images, key, self.config.augment)

    # ---- one step -----------------------------------------------------------------------------
    def step(self, s: TrainState, images, key):
        """One training step on the uint8 batch `images` (B, H, W, 3): `(state, metrics)`."""
        return self.update(s, self.views(images, key))

    def _update(self, s: TrainState, xs):
        """The step on the two views `xs` (2, B, size, size, 3): loss, both optimizers, F̂, DirectPred, EMA, reset."""
        c = self.config
        grad = jax.value_and_grad(self.loss, argnums=(0, 1), has_aux=True)
        (loss, aux), (g_online, g_pred) = grad(s.online, s.pred, s.target, s.online_bn, s.pred_bn,
                                               s.target_bn, xs)
        d = aux["f"].shape[-1]
        f = jax.lax.stop_gradient(aux["f"]).reshape(-1, d).astype(jnp.float32)
        g = c.predictor_object
        rho = g.rho if g is not None and g.direct else FHAT_RHO
        corr = update_correlation(s.corr, f, rho, s.step == 0)
        cross = fhat_update(s.cross, _cross_views(aux["f"], aux["z"]), rho, s.step == 0)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats with its int32 count
            upd, opt = self.opt.update(g_online, s.opt, s.online)
            online = optax.apply_updates(s.online, upd)
            upd, pred_opt = self.pred_opt.update(g_pred, s.pred_opt, s.pred)
            pred = optax.apply_updates(s.pred, upd)
        if c.symmetrize:
            pred = symmetrize_predictor(pred)
        if g is not None and g.direct:  # DirectPred / DirectCopy: Wp = g(F̂) every freq steps (THEORY.md 10.1-10.2)
            Wp = g.matrix(corr)
            pred = jax.lax.cond(s.step % g.freq == 0, lambda: set_predictor_matrix(pred, Wp), lambda: pred)
        if c.ema == 0:
            target, target_bn = online, aux["online_bn"]
        else:
            target, target_bn = ema_update(s.target, online, ema_at(c, s.step)), aux["target_bn"]
        pred_bn = aux["pred_bn"]
        if c.predictor_reset:  # after every N-th step: a fresh predictor, its momentum zeroed
            pred, pred_bn, pred_opt = jax.lax.cond(
                (s.step + 1) % c.predictor_reset == 0, lambda: self.fresh_predictor(s.step + 1, pred_opt),
                lambda: (pred, pred_bn, pred_opt))
        new = TrainState(s.step + 1, online, aux["online_bn"], target, target_bn, pred, pred_bn,
                         opt, pred_opt, corr, cross)
        h = aux["h"].reshape(-1, aux["h"].shape[-1])
        with jax.numpy_dtype_promotion("standard"):  # an optax schedule of the int32 step
            lr = self.lr(s.step) if callable(self.lr) else self.lr
        metrics = dict(loss=loss, z_std=_collapse_std(f), h_std=_collapse_std(h), lr=jnp.asarray(lr, jnp.float32),
                       ema=jnp.asarray(ema_at(c, s.step), jnp.float32))
        return new, metrics

    # ---- evaluation ---------------------------------------------------------------------------
    def _features(self, online, online_bn, images):
        """Frozen online-encoder features (eval-mode BN) of uint8 images after the test transform."""
        x = eval_transform(images, self.config.augment)
        net = nnx.merge(self.net_eval_def, online, online_bn, copy=True)
        return net.encoder(x).astype(jnp.float32)

    def _features_batch_bn(self, online, online_bn, images):
        """As `features` but with BatchNorm normalising by the statistics of this batch (train mode)."""
        x = eval_transform(images, self.config.augment)
        net = nnx.merge(self.net_def, online, online_bn, copy=True)
        return net.encoder(x).astype(jnp.float32)

    @functools.cached_property
    def features_batch_bn(self):
        """Jitted `_features_batch_bn(online, online_bn, images)`: features with batch-statistics BN."""
        return jax.jit(self._features_batch_bn)


@functools.partial(jax.jit, static_argnames="aug")
def _views(images: jax.Array, key: jax.Array, aug: Augment) -> jax.Array:
    """`BYOL.views`, jitted on its own (view v of image b uses the key `split(split(key)[v], B)[b]`): the input
    pipeline compiles once per augmentation and batch shape, whatever the rest of the config (its compile is
    about half of a small network's step)."""
    return jax.vmap(lambda k: augment_batch(k, images, aug))(jax.random.split(key))


def _cross_views(f, z):
    """E_B[z fᵀ] across the views, symmetrised: the target projection of each view against the online projection
    of the other, (z₂ᵀ f₁ + z₁ᵀ f₂) / 2B, then (M + Mᵀ)/2; `f`, `z` (2, B, d), detached, in float32."""
    f, z = (jax.lax.stop_gradient(a).astype(jnp.float32) for a in (f, z))
    M = (z[1].T @ f[0] + z[0].T @ f[1]) / (2 * f.shape[1])
    return 0.5 * (M + M.T)


def _collapse_std(x):
    """Mean over dimensions of the batch std of l2-normalized x: ≈ 1/√d when healthy, 0 when collapsed
    (SimSiam's collapse indicator)."""
    return jnp.mean(jnp.std(_normalize(x.astype(jnp.float32)), axis=0))


@functools.lru_cache(maxsize=16)
def build(config: Config) -> BYOL:
    """The `BYOL` for `config`, cached so that equal configs share their compiled step."""
    return BYOL(config)
