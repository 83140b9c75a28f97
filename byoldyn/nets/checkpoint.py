"""Checkpoints of a `TrainState` with orbax: atomic (orbax writes a temporary folder and renames it),
the newest `keep` kept, plus the run's config and position as JSON beside each state."""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import one_line, read_json

__all__ = ["Checkpoints", "contain_orbax_noise", "unreadable_why"]


def _loop_closed(e) -> bool:
    return isinstance(e, RuntimeError) and str(e) == "Event loop is closed"


def _abandoned(e) -> bool:
    """A pending read's coroutine closed when collected: orbax's `except BaseException` turns the `GeneratorExit`
    into "Encountered error while reading array index", which Python reports as "Exception ignored in"."""
    return _loop_closed(e) or isinstance(getattr(e, "__cause__", None), GeneratorExit)


_CONTAINED = False


def contain_orbax_noise() -> None:
    """Drop the `RuntimeError: Event loop is closed` tracebacks that follow a failed restore (a corrupt checkpoint),
    and asyncio's "Future exception was never retrieved" and "coroutine ... was never awaited" of a failed save's
    other writes.

    Orbax reads a checkpoint's arrays as tensorstore futures awaited in a fresh event loop; when one read fails
    (a corrupt file), orbax closes that loop while the other reads are still pending, and each of them, on
    completing, prints a 6-line traceback from tensorstore's thread (about 100 for a ResNet's state: 600 lines).
    The failure itself is reported by the caller in one line. Only that exact error is dropped, from
    `sys.excepthook`, `sys.unraisablehook` and `threading.excepthook`, with one more from `sys.unraisablehook`: a
    pending read's coroutine closed when collected, whose `GeneratorExit` orbax re-raises as another exception.
    Installed once, by the first `Checkpoints`, for the rest of the process (the pending reads or writes finish later; a failed save does the same).
    """
    global _CONTAINED
    if _CONTAINED:
        return
    _CONTAINED = True
    hook, unraisable, thread_hook = sys.excepthook, sys.unraisablehook, threading.excepthook
    sys.excepthook = lambda t, e, tb: None if _loop_closed(e) else hook(t, e, tb)
    warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)  # the writes never started
    logging.getLogger("asyncio").addFilter(  # the failed reads' / writes' futures that orbax never awaited
        lambda r: not str(r.msg).split("\n", 1)[0].endswith("exception was never retrieved"))
    sys.unraisablehook = lambda u: None if _abandoned(u.exc_value) else unraisable(u)
    threading.excepthook = lambda a: None if _loop_closed(a.exc_value) else thread_hook(a)


def unreadable_why(e: BaseException) -> str:
    """Why a checkpoint could not be read, in one line (tensorstore's messages end in a long spec dump)."""
    return one_line(e).split(" See full TensorStore details")[0]


@contextlib.contextmanager
def _quiet_logs():
    """Orbax's own log lines about a damaged checkpoint (absl WARNING/ERROR: "Failed to json parse Metadata
    file ...") are silenced while it is read: the caller says in one line what was wrong and what it did."""
    loggers = [logging.getLogger(name) for name in ("absl", "orbax")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class Checkpoints:
    """Orbax `CheckpointManager` over `directory` (synchronous saves; `keep` newest checkpoints kept).

    `save(step, state, meta)`: the state pytree and a JSON-able `meta` dict under number `step`.
    `latest()`: the newest step or None; `steps()`: all, newest first. `read_meta(step)`: the meta dict
    (a corrupt file raises `ValueError` naming it). `restore(step, like)`: `(state, meta)`, the state
    restored into the structure, shapes and dtypes of `like` (a `TrainState` or its `jax.eval_shape`);
    `restore_state(step, like)` the state alone (orbax's log lines and, after a failed read, the stray tracebacks
    of its pending reads are contained: `contain_orbax_noise`). `set_aside(step, to)`: move an unreadable checkpoint out
    of the way (into folder `to`), so that it is neither resumed from nor overwritten.
    """

    def __init__(self, directory, keep: int = 2):
        import orbax.checkpoint as ocp

        contain_orbax_noise()  # a failed read or write prints tracebacks from orbax's threads (see there)
        self._ocp = ocp
        self._keep = keep
        self.directory = Path(directory).absolute()
        self._mgr = self._open()

    def _open(self):
        ocp = self._ocp
        opts = ocp.CheckpointManagerOptions(max_to_keep=self._keep, enable_async_checkpointing=False, create=True)
        with _quiet_logs():  # it reads every step's metadata: a damaged one is reported when it is restored
            return ocp.CheckpointManager(self.directory, options=opts)

    def save(self, step: int, state, meta: dict) -> None:
        """Save checkpoint `step`. **Raises:** `OSError` (one line) when it cannot be written, e.g. a full disk
        ("No space left on device"): the partial checkpoint is removed, the earlier ones are kept."""
        ocp = self._ocp
        try:
            with _quiet_logs():
                self._mgr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                                   meta=ocp.args.JsonSave(meta)), force=True)
                self._mgr.wait_until_finished()
        except Exception as e:
            self._settle()
            self._drop_partial(step)
            full = "No space left on device" in str(e) or "os_error_code='28'" in str(e)
            if not (full or isinstance(e, OSError)):
                raise
            kept = self.steps()
            why = "No space left on device" if full else unreadable_why(e)
            raise OSError(errno.ENOSPC if full else e.errno,
                          f"{why} while saving checkpoint {int(step)} in {self.directory}; "
                          + (f"the checkpoints of steps {', '.join(map(str, kept))} are kept" if kept
                             else "no checkpoint is kept")) from None

    def _drop_partial(self, step: int) -> None:
        """Remove the partial checkpoint `step`. A tensorstore write still in flight creates its folders again
        after a removal, so remove until none has come back for 0.5 s (at most 30 s)."""
        deadline, quiet = time.monotonic() + 30, 0
        while quiet < 5 and time.monotonic() < deadline:
            found = list(self.directory.glob(f"{int(step)}.orbax-checkpoint-tmp*"))
            for tmp in found:
                shutil.rmtree(tmp, ignore_errors=True)
            quiet = 0 if found else quiet + 1
            time.sleep(0.1)

    def _settle(self) -> None:
        """After a failed save: wait for orbax's writer threads, their own failures unprinted (the caller reports
        the failure in one line), and start a fresh manager."""
        hook = threading.excepthook
        threading.excepthook = lambda a: None
        try:
            with _quiet_logs():
                for t in threading.enumerate():
                    if type(t).__name__ == "_SignalingThread" and t is not threading.current_thread():
                        t.join(timeout=60)
                with contextlib.suppress(Exception):
                    self._mgr.close()
        finally:
            threading.excepthook = hook
        with contextlib.suppress(OSError):  # a full disk: the closed manager stays (closing it again is a no-op)
            self._mgr = self._open()

    def latest(self) -> int | None:
        return self._mgr.latest_step()

    def steps(self) -> list[int]:
        """Every checkpointed step, newest first."""
        with _quiet_logs():  # a damaged step's metadata is reported by the caller when it reads it
            return sorted(self._mgr.all_steps(), reverse=True)

    def restore_state(self, step: int, like):
        ocp = self._ocp
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
        with _quiet_logs():
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            state = self._mgr.restore(int(step), args=args)["state"]
        # orbax's arrays are committed to a device, `BYOL.init`'s are not, and jit compiles another program for
        # committed arguments: uncommitted copies let a resumed run reuse the step compiled for a fresh one
        return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state)

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
