"""Former home of `byoldyn sweep` and `byoldyn plot`, now `byoldyn.cli.sweep`, `byoldyn.cli.plot` and
`byoldyn.cli.ranges`; kept so that `python -m byoldyn.sweep_cli sweep|plot ...` and these imports still work."""

from functools import partial

from .cli import SWEEP_COMMANDS, add_commands, sweep_main as main
from .cli.ranges import MAX_VALUES, parse_int_range, parse_range

__all__ = ["main", "add_parsers", "parse_range", "parse_int_range", "MAX_VALUES"]

add_parsers = partial(add_commands, commands=SWEEP_COMMANDS)

if __name__ == "__main__":
    import sys

    sys.exit(main())
