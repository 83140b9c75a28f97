"""Checkpoints of a `TrainState` with orbax: atomic (orbax writes a temporary folder and renames it),
the newest `keep` kept, plus the run's config and position as JSON beside each state."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax

from ..errors import read_json

__all__ = ["Checkpoints"]


class Checkpoints:
    """Orbax `CheckpointManager` over `directory` (synchronous saves; `keep` newest checkpoints kept).

    `save(step, state, meta)`: the state pytree and a JSON-able `meta` dict under number `step`.
    `latest()`: the newest step or None; `steps()`: all, newest first. `read_meta(step)`: the meta dict
    (a corrupt file raises `ValueError` naming it). `restore(step, like)`: `(state, meta)`, the state
    restored into the structure, shapes and dtypes of `like` (a `TrainState` or its `jax.eval_shape`);
    `restore_state(step, like)` the state alone. `set_aside(step, to)`: move an unreadable checkpoint out
    of the way (into folder `to`), so that it is neither resumed from nor overwritten.
    """

    def __init__(self, directory, keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self._keep = keep
        self.directory = Path(directory).absolute()
        self._mgr = self._open()

    def _open(self):
        ocp = self._ocp
        opts = ocp.CheckpointManagerOptions(max_to_keep=self._keep, enable_async_checkpointing=False, create=True)
        return ocp.CheckpointManager(self.directory, options=opts)

    def save(self, step: int, state, meta: dict) -> None:
        ocp = self._ocp
        self._mgr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                           meta=ocp.args.JsonSave(meta)), force=True)
        self._mgr.wait_until_finished()

    def latest(self) -> int | None:
        return self._mgr.latest_step()

    def steps(self) -> list[int]:
        """Every checkpointed step, newest first."""
        return sorted(self._mgr.all_steps(), reverse=True)

    def restore_state(self, step: int, like):
        ocp = self._ocp
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
        return self._mgr.restore(int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]

    def restore(self, step: int, like):
        return self.restore_state(step, like), self.read_meta(step)

    def read_meta(self, step: int) -> dict:
        path = self.directory / str(int(step)) / "meta" / "metadata"  # where orbax's JsonSave puts item "meta"
        meta = read_json(path, "checkpoint metadata")
        if not isinstance(meta, dict):
            raise ValueError(f"cannot read checkpoint metadata {str(path)!r}: not a JSON object")
        return meta

    def set_aside(self, step: int, to) -> Path:
        """Move checkpoint `step` into folder `to` (a fresh name if one is there already); returns where."""
        to = Path(to)
        to.mkdir(parents=True, exist_ok=True)
        dest, k = to / str(int(step)), 1
        while dest.exists():
            dest, k = to / f"{int(step)}.{k}", k + 1
        shutil.move(str(self.directory / str(int(step))), str(dest))
        self._mgr.close()
        self._mgr = self._open()
        return dest

    def close(self) -> None:
        self._mgr.close()
