"""The CLI's one error path and the checks every command makes before it computes.

Every command (`byoldyn ...`, `python -m byoldyn.cli ...`) runs through `run_command`, so every failure is ONE line on stderr and one of these exit statuses:

- 0: success.
- 2: bad input, refused before anything was computed: a bad flag or value (argparse, or a validation
  `ValueError` naming the parameter), a missing, unreadable or corrupt input file (`ValueError`, `OSError`,
  `EOFError`, `TypeError`/`KeyError` from its content), or an output place that cannot be written. Commands
  check their output places with `check_output_file` / `check_output_dir` before computing, so that a
  read-only filesystem, a missing permission, OUT being a directory (or a path under a regular file) is
  an exit-2 refusal and not a fault after an hour of work.
- 1: a run that started and failed. Precisely: (a) `RunFailed` (e.g. the result diverged: the command
  first writes what it has, with the status in its attributes, then raises it), or a command returning 1
  from its result (reproduce: a check disagrees; train: the loss became NaN); (b) an `OSError` raised after
  the command called `started()` (the computation began: a disk that fills up or a file removed
  while results are written); (c) out of memory (`MemoryError`, XLA `RESOURCE_EXHAUSTED`) or another XLA
  runtime error while computing.
- 130: interrupted (Ctrl-C).

A command that writes `--out` first takes an exclusive lock on it (`byoldyn.io.lock_output`): a second run on the
same output is refused (exit 2); `run_command` releases the locks when the command ends. A disk that fills up
while a result is written is an `OSError` (exit 1) whose line says "No space left on device" and what was kept
(`byoldyn.io.atomic_write`).

Anything else (e.g. `AttributeError`) is a bug and keeps its traceback. `BYOLDYN_TRACEBACK=1` prints the
traceback of every error before its line (for debugging), with the same exit status; `TypeError`/`KeyError`
lines say which type they were, as a hint.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = ["RunFailed", "UsageError", "as_flags", "check_output_file", "check_output_dir", "one_line", "read_json",
           "run_command", "started"]


class UsageError(Exception):
    """A bad command line (argparse): printed as it is, exit status 2."""


class RunFailed(RuntimeError):
    """A run that started and failed (diverged, an I/O fault mid-run): one line on stderr, exit status 1."""


_STARTED = False


def started() -> None:
    """Mark that the command's computation began: from now on an `OSError` is a failed run (exit 1), not bad input."""
    global _STARTED
    _STARTED = True


def one_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, with its type when the message is empty."""
    text = str(e).strip()
    if isinstance(e, KeyError) and e.args:
        text = f"missing {e.args[0]!r}"
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror
        if e.filename is not None:
            text += f": {str(e.filename)!r}"
            if e.filename2 is not None:
                text += f" -> {str(e.filename2)!r}"
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line or type(e).__name__


def as_flags(names: Mapping[str, str]):
    """A context manager: a `ValueError` whose message starts with Python parameter names (`gamma_a must ...`,
    `rtol and atol must ...`, `rtol, atol must ...`) is re-raised with the command-line flags instead
    (`--ema must ...`), when every name it starts with has a flag in `names`."""
    pattern = re.compile(r"^\w+(?:(?:, | and )\w+)*(?= must| should| is | are )")

    @contextlib.contextmanager
    def rename() -> Iterator[None]:
        try:
            yield
        except ValueError as e:
            msg = str(e)
            m = pattern.match(msg)
            words = re.split(r"(, | and )", m.group()) if m else []
            if m is None or not words or any(w not in names for w in words[::2]):
                raise
            head = "".join(names.get(w, w) if i % 2 == 0 else w for i, w in enumerate(words))
            raise ValueError(head + msg[m.end():]) from None

    return rename()


def _probe_dir(d: Path, what: str) -> None:
    """`d` (or, where `d` will be created, its nearest existing ancestor) is a directory a file can be created in.

    Tried by creating and removing a temporary file: `os.access` is no answer for root (it ignores mode bits)
    nor for pseudo-filesystems such as /proc, where even root cannot create a file.
    """
    p = d
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise ValueError(f"{what}: {str(p)!r} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".byoldyn-probe.", dir=p)
    except OSError as e:  # ENOENT in an existing directory: a pseudo-filesystem (/proc)
        why = "files cannot be created there" if e.errno == errno.ENOENT else (e.strerror or one_line(e))
        raise ValueError(f"{what}: cannot write in {str(p)!r} ({why})") from None
    os.close(fd)
    os.remove(tmp)


def check_output_file(path: str | os.PathLike, flag: str = "--out", suffix: str | None = None) -> Path:
    """Refuse, before any work, an output file that cannot be written: a directory, a bad suffix, a read-only place.

    Result files are written atomically (a temporary file beside the target, then a rename; `byoldyn.io`),
    so the check is that a file can be created in the target's directory. An existing target must be a
    regular file (never `/dev/null` or a fifo, which the rename would replace).
    """
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"{flag} must end in {suffix}, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a directory, not a file")
    if path.exists() and not path.is_file():
        raise ValueError(f"{flag} {str(path)!r} is not a regular file")
    if path.is_file() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag}: cannot overwrite {str(path)!r} (permission denied or read-only)")
    _probe_dir(path.parent, flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output directory that is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a file, not a directory")
    _probe_dir(path, flag)
    return path


def read_json(path: str | os.PathLike, what: str = "file"):
    """Parse a JSON file; a missing, unreadable or corrupt one raises `ValueError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {what} {str(path)!r}: {one_line(e)}") from None


def _xla_runtime_error(e: BaseException) -> bool:
    return type(e).__name__ in ("XlaRuntimeError", "JaxRuntimeError")


def run_command(func: Callable[[], int], prog: str = "byoldyn") -> int:
    """Run a parsed CLI command; turn every expected failure into one line on stderr and an exit status.

    The statuses are those of the module docstring: `UsageError` -> its text, 2; `RunFailed`, an `OSError`
    after `started()`, out of memory or an XLA runtime error -> "PROG: failed: ...", 1; `ValueError`
    (validation, data, JSON), `OSError`, `EOFError`, `TypeError` / `KeyError` from bad input ->
    "PROG: error: ...", 2; `KeyboardInterrupt` -> 130. `func` returns the status (None counts as 0).
    """
    from .io import release_outputs

    try:
        return _run(func, prog)
    finally:
        release_outputs()  # the output locks the command took (`byoldyn.io.lock_output`)


def _run(func: Callable[[], int], prog: str) -> int:
    global _STARTED
    _STARTED = False
    trace = os.environ.get("BYOLDYN_TRACEBACK", "") not in ("", "0")

    def say(line: str) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # what the command printed comes first
        if trace:  # BYOLDYN_TRACEBACK=1: the traceback too, before the line; the exit status is the same
            traceback.print_exc()
        print(line, file=sys.stderr)

    try:
        return int(func() or 0)
    except UsageError as e:
        say(one_line(e))
        return 2
    except RunFailed as e:
        say(f"{prog}: failed: {one_line(e)}")
        return 1
    except MemoryError:
        say(f"{prog}: failed: out of memory")
        return 1
    except OSError as e:
        if _STARTED:
            say(f"{prog}: failed: {one_line(e)}")
            return 1
        say(f"{prog}: error: {one_line(e)}")
        return 2
    except (ValueError, EOFError) as e:
        say(f"{prog}: error: {one_line(e)}")
        return 2
    except (TypeError, KeyError) as e:
        say(f"{prog}: error: {one_line(e)} ({type(e).__name__}; BYOLDYN_TRACEBACK=1 shows where)")
        return 2
    except KeyboardInterrupt:
        say(f"{prog}: interrupted")
        return 130
    except Exception as e:
        if not _xla_runtime_error(e):
            raise
        say(f"{prog}: failed: {one_line(e)}")
        return 1
