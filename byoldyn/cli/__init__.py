"""The `byoldyn` command: one module per subcommand (`simulate`, `reproduce`, `train_linear`, `sweep`, `plot`,
`train`, `compare`), each with `add_parser(sub)` and `run(args)`; what they share is `byoldyn.cli.common`.

One line on stderr for every error; exit 2 for bad input (nothing computed), 1 for a run that started and failed
(it diverged; its result file is still written). See `byoldyn.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from .. import __version__
from . import compare, plot, reproduce, simulate, sweep, train, train_linear
from .common import Parser, host_devices, run

__all__ = ["main", "parser", "add_commands", "COMMANDS"]

COMMANDS: tuple[ModuleType, ...] = (simulate, reproduce, train_linear, sweep, plot, train, compare)

DESCRIPTION = "Learning dynamics of linear BYOL / SimSiam (Tian, Chen & Ganguli 2021)."
EPILOG = ("Exit status: 0 success; 2 bad input (a flag, value, input file or output place; nothing computed); 1 a "
          "run that started and failed (e.g. it diverged: its result file is still written). Every error is one "
          "line on stderr; BYOLDYN_TRACEBACK=1 shows the traceback.")


def add_commands(sub, commands: Sequence[ModuleType] = COMMANDS) -> None:
    """Add the subcommands `commands` (modules of `byoldyn.cli`) to the argparse subparsers `sub`."""
    for command in commands:
        command.add_parser(sub)


def parser(commands: Sequence[ModuleType] = COMMANDS, description: str = DESCRIPTION,
           epilog: str | None = EPILOG) -> Parser:
    """The `byoldyn` parser with the subcommands `commands`."""
    p = Parser(prog="byoldyn", description=description, epilog=epilog)
    p.add_argument("--version", action="version", version=f"byoldyn {__version__}")
    add_commands(p.add_subparsers(dest="command", required=True, parser_class=Parser), commands)
    return p


def main(argv: list[str] | None = None, commands: Sequence[ModuleType] = COMMANDS, description: str = DESCRIPTION,
         epilog: str | None = EPILOG, devices: bool = True) -> int:
    """`byoldyn ...`: exit 0 on success, 1 for a run that started and failed, 2 for bad input (one line).
    `devices`: one XLA CPU device per core (`common.host_devices`), set before JAX starts."""
    if devices:
        host_devices()
    return run(lambda: parser(commands, description, epilog), argv)
