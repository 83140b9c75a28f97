"""Former home of `byoldyn train-linear`, now `byoldyn.cli.train_linear`; kept so that this import still works."""

from .cli.train_linear import add_parser as add_parsers

__all__ = ["add_parsers"]
