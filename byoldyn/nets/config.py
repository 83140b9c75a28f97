"""`Config`: every setting of a real-network run, validated on construction (THEORY.md section 11).

Defaults are the official CIFAR-10 settings: SGD lr 0.03, momentum 0.9, weight decay 4e-4, batch 128,
EMA 0.996, projector 512-128 with BN(affine=False), linear predictor without bias, DirectPred
rho = 0.3, eps = 0.1 (Table 8), freq = 1, the code's boost_scale form, an independently initialized
target (section 15, item 4). Paper symbols: `ema` is the target's retention m (the theory's EMA rate
beta relates to 1 - m); `alpha_p` the predictor's learning-rate ratio; `wd_p` its own weight
decay (eta_p; `predictor_wd` accepted). The predictor is a `byoldyn.predictors` object that carries its own
parameters (DirectPred's eps, rho, freq, form); `rho`, `eps`, `freq`, `dp_form` are its shorthands.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .. import predictors as P
from ..sampled.train import CENTERS
from .augment import Augment

__all__ = ["Config", "PREDICTORS", "ALIASES", "HEAD_NORMS"]

#: the ResNet level's predictors: the shared registry (`byoldyn.predictors.PREDICTORS`) plus the ResNet-only mlp
PREDICTORS = (*P.PREDICTORS, "mlp")
#: former names, accepted and mapped on construction (old configs and checkpoints keep loading)
ALIASES = dict(P.ALIASES)
#: the heads' normalisation (`Config.head_norm`, `byoldyn.nets.heads`): BatchNorm (the official code's), or one of
#: the sampled level's `byoldyn.sampled.CENTERS` (none, its zero-mean step with the batch mean differentiated or
#: detached): one name per concept at both levels
HEAD_NORMS = ("bn", *CENTERS)


@dataclass(frozen=True)
class Config:
    """All hyperparameters of one run; frozen and hashable (compiled steps are cached per `Config`).

    **Model:** `width` (channel multiplier), `stage_sizes` ((2, 2, 2, 2) is ResNet-18), `stem`
    ("cifar" | "imagenet"), `proj_hidden`, `proj_dim`, `proj_out_bn` (SimSiam's BN without affine on the
    projections; off in the official code), `predictor` (a `byoldyn.predictors` name: "learned"
    (the linear Wp) | "symmetric" (linear Wp <- (Wp+Wpᵀ)/2 after each step, `predictor_reg=symmetric`) |
    "identity" | "directpred" | "directcopy"; or "mlp"; the old "linear" / "none" are mapped to "learned" /
    "identity", and `symmetric=True` with "learned" to "symmetric"), `pred_hidden` (mlp), `bias`,
    `symmetric` (mlp only: symmetrize the two layers after each step).
    **Heads' normalisation** (the companion paper, arXiv 2010.00578: BN's zero-mean step and the predictor make
    BYOL's implicit contrastive term): `head_norm` ("bn": BatchNorm(affine=False), the official code |
    "center": x - mean_b x, the batch mean differentiated | "center-detach": the batch mean under
    stop_gradient | "none": no normalisation), the kind of every normalisation layer of the heads: the
    projector's hidden one, its `proj_out_bn` one and the mlp predictor's (the linear Wp of learned, symmetric,
    DirectPred, DirectCopy has none: there it is the projector's alone). The backbone's BatchNorm is unchanged;
    evaluation reads the backbone, and centering keeps a running mean for eval mode as BN does.
    **Predictor reset:** `predictor_reset` (N, None: never): after every N-th step (when the step count
    becomes a multiple of N) all the predictor's parameters (and the mlp's BN statistics) are drawn afresh
    from its own initialiser with the key `fold_in(fold_in(key(seed), RESET_TAG), step count)`, and its
    optimizer's momentum is zeroed (the learning-rate schedule's step count is kept: the predictor's lr goes
    on along its schedule). A function of the seed and the step only, so a resumed run resets at the same
    steps. Refused for predictors with no learned parameters (identity, directpred, directcopy).
    **BYOL:** `ema` (target retention m in [0, 1); 0 = no EMA, the target is the online net, SimSiam),
    `stop_grad`, `loss` (`byoldyn.predictors.LOSSES`: "cosine": 2 - 2 cos per view pair, | "euclidean": ‖y - z‖²
    | "isoloss": ‖y - z‖² with the output error sent to the projection without the predictor's Jacobian,
    docs/isoloss.md; it needs `stop_grad`), `target_init`
    ("independent" as the official code | "copy" as BYOL).
    **Predictor object:** `predictor` may be a `byoldyn.predictors` object (`bd.DirectPred(eps=0.2, freq=2)`);
    it lands in `predictor_object`, and `predictor` holds its name. `rho` (F̂ retention), `eps`, `freq`,
    `dp_form` are shorthands of its parameters (None: not given): with a name they build the object, with an
    object they must agree with it (`ValueError` otherwise). After construction they show the object's values
    (None where the predictor has no such parameter), and every level reads the object.
    **Optimizer:** `optimizer` ("sgd" | "lars"), `lr`, `momentum`, `wd`, `alpha_p` (predictor lr =
    alpha_p lr), `wd_p` (the predictor's weight decay, None: `wd`; the former keyword
    `predictor_wd` is accepted), `batch_size`.
    **Schedules** (`byoldyn.nets.schedule`; the defaults are the official code's: none): `lr_schedule`
    ("constant" | "cosine": half-cosine to 0 at `total_steps`), `warmup_steps` (linear warmup from 0),
    `ema_schedule` ("constant" | "byol": tau_k = 1 - (1 - ema)(cos(pi k/K) + 1)/2, K = `total_steps`),
    `total_steps` (needed by "cosine" and "byol").
    **Precision:** `dtype` ("float32" | "bfloat16": convolutions and projector matmuls computed in bfloat16,
    parameters, BN statistics, loss and optimizer kept in float32).
    **Data:** `augment` (an `Augment`), `seed`.
    """

    width: float = 0.25
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    stem: str = "cifar"
    proj_hidden: int = 512
    proj_dim: int = 128
    proj_out_bn: bool = False
    predictor: str = "learned"
    pred_hidden: int = 512
    bias: bool = False
    symmetric: bool = False
    head_norm: str = "bn"
    predictor_reset: int | None = None
    ema: float = 0.996
    stop_grad: bool = True
    loss: str = "cosine"
    target_init: str = "independent"
    rho: float | None = None
    eps: float | None = None
    freq: int | None = None
    dp_form: str | None = None
    optimizer: str = "sgd"
    lr: float = 0.03
    momentum: float = 0.9
    wd: float = 4e-4
    alpha_p: float = 1.0
    wd_p: float | None = None
    batch_size: int = 128
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    total_steps: int | None = None
    ema_schedule: str = "constant"
    dtype: str = "float32"
    augment: Augment = dataclasses.field(default_factory=Augment.cifar10)
    seed: int = 0
    predictor_object: P.Predictor | None = None
    predictor_wd: dataclasses.InitVar[float | None] = None  # the former name of wd_p, accepted

    def __post_init__(self, predictor_wd=None):
        if predictor_wd is not None:
            if self.wd_p is not None and self.wd_p != predictor_wd:
                raise ValueError(f"wd_p and predictor_wd (its former name) differ: {self.wd_p!r} != {predictor_wd!r}")
            object.__setattr__(self, "wd_p", predictor_wd)
        self._carry_predictor()

        def bad(name, value, want):
            raise ValueError(f"{name} must be {want}, got {value!r}")

        def finite(name, lo=None, lo_open=False, hi=None, hi_open=False):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(name, v, "a finite number")
            if lo is not None and (v < lo or (lo_open and v == lo)):
                bad(name, v, f"{'>' if lo_open else '>='} {lo}")
            if hi is not None and (v > hi or (hi_open and v == hi)):
                bad(name, v, f"{'<' if hi_open else '<='} {hi}")

        finite("width", 0, True)
        finite("ema", 0, False, 1, True)
        finite("lr", 0, True)
        finite("momentum", 0, False, 1, True)
        finite("wd", 0)
        finite("alpha_p", 0, True)
        if self.wd_p is not None:
            finite("wd_p", 0)
        for name in ("proj_hidden", "proj_dim", "pred_hidden", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                bad(name, v, "a positive integer")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            bad("warmup_steps", self.warmup_steps, "a non-negative integer")
        if self.total_steps is not None and (not isinstance(self.total_steps, int) or self.total_steps < 1):
            bad("total_steps", self.total_steps, "a positive integer or None")
        if self.total_steps is None and (self.lr_schedule != "constant" or self.ema_schedule != "constant"):
            bad("total_steps", self.total_steps, "set when lr_schedule is cosine or ema_schedule is byol")
        if self.lr_schedule == "cosine" and self.warmup_steps >= self.total_steps:
            bad("warmup_steps", self.warmup_steps, f"< total_steps ({self.total_steps}) with a cosine schedule")
        if self.batch_size < 2:
            bad("batch_size", self.batch_size, ">= 2 (BatchNorm needs a batch)")
        if not self.stage_sizes or any((not isinstance(n, int)) or n < 1 for n in self.stage_sizes):
            bad("stage_sizes", self.stage_sizes, "a non-empty tuple of positive integers")
        for name, allowed in (("stem", ("cifar", "imagenet")), ("predictor", PREDICTORS),
                              ("loss", P.LOSSES), ("target_init", ("independent", "copy")),
                              ("optimizer", ("sgd", "lars")),
                              ("lr_schedule", ("constant", "cosine")), ("ema_schedule", ("constant", "byol")),
                              ("dtype", ("float32", "bfloat16")), ("head_norm", HEAD_NORMS)):
            if getattr(self, name) not in allowed:
                bad(name, getattr(self, name), "one of " + ", ".join(allowed))
        if not isinstance(self.symmetric, bool):
            bad("symmetric", self.symmetric, "True or False")
        if self.symmetric and self.predictor != "mlp":
            bad("symmetric", self.symmetric, "False unless predictor is learned (read as symmetric) or mlp")
        if self.head_norm == "none" and self.proj_out_bn:
            bad("proj_out_bn", self.proj_out_bn, "False when head_norm is none (no normalisation in the heads)")
        if self.predictor_reset is not None:
            if isinstance(self.predictor_reset, bool) or not isinstance(self.predictor_reset, int) \
                    or self.predictor_reset < 1:
                bad("predictor_reset", self.predictor_reset, "a positive integer (steps) or None")
            g = self.predictor_object
            if self.predictor == "identity" or (g is not None and g.direct):
                why = "no predictor (Wp = I)" if self.predictor == "identity" else "its Wp set from F̂"
                raise ValueError(f"predictor_reset must be None for predictor {self.predictor}: it has {why}, "
                                 "no learned predictor to reset")
        if not self.stop_grad and self.ema != 0:
            bad("stop_grad", self.stop_grad, "True when ema > 0 (no stop-gradient needs the target = online net, ema = 0)")
        if not self.stop_grad and self.loss == "isoloss":
            bad("stop_grad", self.stop_grad, "True with loss isoloss (IsoLoss is defined by its stop-gradients)")

    @property
    def symmetrize(self) -> bool:
        """Wp (or the mlp's two layers) projected to its symmetric part after each step (THEORY.md section 11)."""
        return self.predictor == "symmetric" or self.symmetric

    def _carry_predictor(self) -> None:
        """`predictor` (a name or an object) and the shorthands -> `predictor_object` (the one carrier) and the
        name in `predictor`; the shorthand fields then show the object's values."""
        obj, given = self.predictor_object, self.predictor
        if isinstance(given, P.Predictor):
            if obj is not None and obj != given:
                raise ValueError(f"predictor {given!r} conflicts with predictor_object {obj!r}: give it once")
            obj, name = given, given.name
        elif isinstance(given, str):  # the shared vocabulary (byoldyn.predictors)
            name = ALIASES.get(given, given)
        else:
            raise ValueError(f"predictor must be a name or a byoldyn.predictors.Predictor, got {given!r}")
        if obj is not None and not isinstance(obj, P.Predictor):
            raise ValueError(f"predictor_object must be a byoldyn.predictors.Predictor or None, got {obj!r}")
        if name == "symmetric" or (self.symmetric is True and name == "learned"):
            name = "symmetric"
            object.__setattr__(self, "symmetric", False)
            obj = None if obj is None or obj.name == "learned" else obj
        short = {"rho": self.rho, "eps": self.eps, "freq": self.freq, "form": self.dp_form}
        if obj is not None and obj.name != name:  # `dataclasses.replace(cfg, predictor=NAME)`: NAME wins, built
            cls = P.PREDICTORS.get(P.ALIASES.get(name, name))  # with the carried values it has a parameter for
            obj, short = None, {k: v for k, v in short.items() if cls is not None and k in cls.PARAMS}
        if name == "mlp":
            if any(v is not None for v in short.values()):
                bad = next(k for k, v in short.items() if v is not None)
                raise ValueError(f"{'dp_form' if bad == 'form' else bad} is not a parameter of the mlp predictor")
        elif name in P.PREDICTORS or name in ALIASES:
            obj = P.as_predictor(name if obj is None else obj, **short)
        object.__setattr__(self, "predictor", name)
        object.__setattr__(self, "predictor_object", obj)
        pars = {} if obj is None else obj.params()
        for field, key in (("rho", "rho"), ("eps", "eps"), ("freq", "freq"), ("dp_form", "form")):
            object.__setattr__(self, field, pars.get(key))

    @property
    def eta_p(self) -> float:
        """The predictor's weight decay: `wd_p`, or `wd` when that is None."""
        return self.wd if self.wd_p is None else self.wd_p

    def to_dict(self) -> dict:
        """A JSON-ready dict (the augmentation nested; the predictor object as its `params()`), inverse of
        `Config.from_dict`."""
        obj = self.predictor_object
        d = dataclasses.asdict(dataclasses.replace(self, predictor_object=None))
        d["stage_sizes"] = list(self.stage_sizes)
        d["predictor_object"] = None if obj is None else obj.params()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """The `Config` of a `to_dict` record, also of older ones (the shorthand keys rho, eps, freq, dp_form of
        every predictor, kept only where the predictor has that parameter)."""
        d = dict(d)
        a = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.pop("augment").items()}
        d["stage_sizes"] = tuple(d["stage_sizes"])
        params = d.pop("predictor_object", None)
        name = ALIASES.get(d.get("predictor", "learned"), d.get("predictor", "learned"))
        if name == "learned" and d.get("symmetric"):
            name = "symmetric"
        cls_ = P.PREDICTORS.get(name)
        for field, key in (("rho", "rho"), ("eps", "eps"), ("freq", "freq"), ("dp_form", "form")):
            if params is not None or cls_ is None or key not in cls_.PARAMS:
                d.pop(field, None)  # the object's record wins; old records list these for every predictor
        if params is not None:
            d["predictor_object"] = cls_(**params)
        return cls(augment=Augment(**a), **d)
