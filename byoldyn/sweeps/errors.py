"""The refusal of a sweep, shared by its planning, running and storing modules."""

from __future__ import annotations

__all__ = ["Refused", "flag"]


class Refused(ValueError):
    """A refusal whose advice differs on the command line: `str(e)` names Python arguments (`resume=False`),
    `e.cli` the `byoldyn sweep` flags (`--resume`)."""

    def __init__(self, message: str, cli: str | None = None):
        super().__init__(message)
        self.cli = cli or message


def flag(name: str) -> str:
    """The command-line flag of a Python argument name: `n_save` -> `--n-save`."""
    return "--" + name.replace("_", "-")
