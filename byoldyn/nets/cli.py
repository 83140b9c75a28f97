"""Former home of `byoldyn train` and `byoldyn compare`, now `byoldyn.cli.train` and `byoldyn.cli.compare`; kept
so that `python -m byoldyn.nets.cli train|compare ...` and these imports still work."""

from functools import partial

from ..cli import NETS_COMMANDS, add_commands, nets_main as main

__all__ = ["main", "add_parsers"]

add_parsers = partial(add_commands, commands=NETS_COMMANDS)

if __name__ == "__main__":
    import sys

    sys.exit(main())
