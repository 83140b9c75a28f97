"""Checkpoints of a `TrainState` with orbax: atomic (orbax writes a temporary folder and renames it),
the newest `keep` kept, plus the run's config and position as JSON beside each state."""

from __future__ import annotations

from pathlib import Path

import jax

__all__ = ["Checkpoints"]


class Checkpoints:
    """Orbax `CheckpointManager` over `directory` (synchronous saves; `keep` newest checkpoints kept).

    `save(step, state, meta)`: the state pytree and a JSON-able `meta` dict under number `step`.
    `latest()`: the newest step or None. `restore(step, like)`: `(state, meta)`, the state restored into
    the structure, shapes and dtypes of `like` (a `TrainState` or its `jax.eval_shape`).
    """

    def __init__(self, directory, keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True)
        self._mgr = ocp.CheckpointManager(self.directory, options=opts)

    def save(self, step: int, state, meta: dict) -> None:
        ocp = self._ocp
        self._mgr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                           meta=ocp.args.JsonSave(meta)), force=True)
        self._mgr.wait_until_finished()

    def latest(self) -> int | None:
        return self._mgr.latest_step()

    def restore(self, step: int, like):
        ocp = self._ocp
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
        r = self._mgr.restore(int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                  meta=ocp.args.JsonRestore()))
        return r["state"], r["meta"]

    def read_meta(self, step: int) -> dict:
        ocp = self._ocp
        return self._mgr.restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def close(self) -> None:
        self._mgr.close()
