"""`byoldyn.sweeps`: hyperparameter sweeps at scale: chunked, sharded over devices, resumable, labelled.

A sweep is the Cartesian grid (or an explicit list) of any of alpha_p, eta, eta_p, beta, sigma2,
the widths n1/n2, the initialisation scale and the predictor's ODE-level parameters (ε, DirectSet's α), times a
set of seeds, under one `Variant` (EMA, stop-gradient, the predictor object), at one level of the model
ladder (THEORY.md sections 1, 5, 7):

- `"modes"`: the decoupled per-mode system (Eqs. 11-13) in the finite scalar form (w, w_p, w_a)
  of `flows.modes.mode_field` (THEORY.md section 7.1), one lane per mode and member; an F̂-derived predictor
  (DirectPred, DirectCopy, DirectSet) slaves p_j = `predictor.modes(s)` to the spectrum
  (`flows.modes.directpred_field`);
- `"symmetric"`: the (Wp, F, tau) flow, Eq. 7 (`predictor="symmetric"`) or Eq. 62 (`"learned"`),
  with tau evolved by Assumption 1 (THEORY.md section 5);
- `"matrix"`: the full Lemma 1 flow (Eqs. 2-4) and its variants.

Every member starts from `State.random(PRNGKey(seed), n1, n2, scale=scale)` with Wa(0) = 0 (the
paper's tau(0) = 0), so a seed means the same start at every hyperparameter and at every level:
the symmetric level takes F = W Wᵀ and Wp, the mode level the eigenvalues s_j of F and
p_j = u_jᵀ sym(Wp) u_j on its eigenvectors (the aligned projection of the same start).

Members are integrated in chunks of bounded size; a chunk is one XLA program whose member axis
is sharded over all JAX devices (`jax.make_mesh` + `NamedSharding`), with the fixed-step Euler
(= full-batch gradient descent) or RK4 scheme, or (matrix level) the adaptive per-member solves
of `simulate_batch`. Only observables are kept, never trajectories. With `out=`, every finished
chunk is written atomically to `OUT.parts/chunk-NNNNN.nc` beside a manifest with the
configuration hash, so a killed sweep started again with the same arguments recomputes only the
missing chunks and then writes `OUT` atomically. The levels' fields, observables and starts are in
`byoldyn.sweep_levels`.

Typed from the keywords to the field: the plan checks each axis's values with the model's own constructors
(`Hyper`, `Data.isotropic`, the predictor's class) before any work, and hands each chunk its members as typed
batched objects (`plan.Members`: a `Hyper`, sigma2 and the `Variant` whose predictor carries the swept
parameters, one value per member), which the compiled program takes as pytrees (`sweep_levels.RHS[level](y,
hyper, sigma2, variant)`); the JSON configuration is the record and resume key derived from them.

The modules: `plan` (options, axes, seeds, member table, chunks, the configuration), `budget` (the bound on
work: memory and disk estimated from the sizes), `run` (the chunk programs, sharding, the multi-process
protocol), `store` (schema, chunk files, their checksums, manifest, complete results), `api` (`sweep`, the
phases in order). The public API is re-exported here; `byoldyn.sweep` is the function.
"""

from ..sweep_levels import OBSERVABLES
from .api import run_sweep, summary, sweep
from .budget import MEMORY_FRACTION, memory_limit
from .errors import Refused
from .plan import LEVELS, METHODS, PARAMS, SEED_LIMIT, Plan, SweepOptions, config_hash
from .store import parts_dir

__all__ = ["sweep", "summary", "run_sweep", "SweepOptions", "Plan", "Refused", "LEVELS", "METHODS", "PARAMS",
           "OBSERVABLES", "parts_dir", "config_hash", "memory_limit", "MEMORY_FRACTION", "SEED_LIMIT"]
