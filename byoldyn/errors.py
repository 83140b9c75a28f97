"""The CLI's one error path and the checks every command makes before it computes.

Exit status: 0 success; 2 a bad flag, value, input file or output place (nothing was computed);
1 a run that started and failed (`RunFailed`, or a result that diverged). Every error is one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

__all__ = ["RunFailed", "UsageError", "check_output_file", "check_output_dir", "one_line", "read_json", "run_command"]


class UsageError(Exception):
    """A bad command line (argparse): printed as it is, exit status 2."""


class RunFailed(RuntimeError):
    """A run that started and failed (diverged, an I/O fault mid-run): one line on stderr, exit status 1."""


def one_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, with its type when the message is empty."""
    text = str(e).strip()
    if isinstance(e, KeyError) and e.args:
        text = f"missing {e.args[0]!r}"
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename!r}" if e.filename else e.strerror
    line = next((s for s in text.splitlines() if s.strip()), "")
    return line or type(e).__name__


def _writable_dir(d: Path, what: str) -> None:
    """`d` (or its nearest existing ancestor, where `d` will be created) is a writable directory."""
    p = d
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise ValueError(f"{what}: {str(p)!r} is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: cannot write in {str(p)!r} (permission denied or read-only)")


def check_output_file(path: str | os.PathLike, flag: str = "--out", suffix: str | None = None) -> Path:
    """Refuse, before any work, an output file that cannot be written: a directory, a bad suffix, a read-only place."""
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"{flag} must end in {suffix}, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a directory, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{flag}: cannot overwrite {str(path)!r} (permission denied or read-only)")
    _writable_dir(path.parent if str(path.parent) else Path("."), flag)
    return path


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, an output directory that is a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a file, not a directory")
    _writable_dir(path, flag)
    return path


def read_json(path: str | os.PathLike, what: str = "file"):
    """Parse a JSON file; a missing, unreadable or corrupt one raises `ValueError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {what} {str(path)!r}: {one_line(e)}") from None


def run_command(func: Callable[[], int], prog: str = "byoldyn") -> int:
    """Run a parsed CLI command; turn every expected failure into one line on stderr and an exit status.

    `UsageError` -> its text, 2; `RunFailed` -> 1; `ValueError` (validation, data, JSON), `OSError`,
    `TypeError` / `KeyError` from bad input -> 2; `KeyboardInterrupt` -> 130. Anything else is a bug and
    keeps its traceback; `BYOLDYN_TRACEBACK=1` keeps it for every error.
    """
    if os.environ.get("BYOLDYN_TRACEBACK"):
        return func()
    try:
        return func()
    except UsageError as e:
        print(one_line(e), file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"{prog}: failed: {one_line(e)}", file=sys.stderr)
        return 1
    except (ValueError, OSError, TypeError, KeyError) as e:
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
