"""The command-line reference page, rendered from the argparse parsers (`byoldyn.cli.parser()`).

Run at build time by docs/hooks.py; `python docs/gen_cli.py` prints the page.
"""

from __future__ import annotations

import argparse
import os

WIDTH = "88"  # argparse wraps help to $COLUMNS


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """{name: (its parser, its one-line help)}; argparse keeps them in private fields, with no accessor."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def render() -> str:
    from byoldyn.cli import parser

    top = parser()
    subs = _subparsers(top)
    lines = [
        "# Command line",
        "",
        "The `byoldyn` command, installed with the package. This page is generated from its argparse parsers",
        "(`byoldyn.cli.parser()`) when the site is built, so it is the `--help` of the installed version.",
        "Every error is one line on stderr: exit status 2 for bad input (nothing computed), 1 for a run that",
        "started and failed (its result file is still written); `BYOLDYN_TRACEBACK=1` shows the traceback.",
        "",
        "| command | what |",
        "|---|---|",
    ]
    for name, (_, short) in subs.items():
        lines.append(f"| [`byoldyn {name}`](#byoldyn-{name}) | {short.replace('|', '&#124;')} |")
    lines += ["", "## byoldyn", "", "```text", _help(top), "```", ""]
    for name, (sub, _) in subs.items():
        lines += [f"## byoldyn {name}", "", "```text", _help(sub), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
