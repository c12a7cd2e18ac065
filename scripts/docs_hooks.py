"""MkDocs hook (mkdocs.yml ``hooks:``): the command-line reference page, generated at build time from the
argparse parsers of :func:`rlmpc.cli.build_parser`, so it cannot drift from the command."""

from __future__ import annotations

import argparse
from typing import Any

from mkdocs.structure.files import File, Files

CLI_PAGE = "reference/cli.md"


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as ``--help`` prints it (``%(default)s`` filled in, ``%%`` → ``%``)."""
    if not action.help:
        return ""
    try:
        return parser._get_formatter()._expand_help(action)
    except (KeyError, TypeError, ValueError):
        return action.help.replace("%%", "%")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each sub-command, in the order ``rlmpc --help`` lists them."""
    out: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: _help(parser, choice) for choice in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        if action.choices is not None:
            name += " {" + ", ".join(f"`{c}`" for c in action.choices) + "}"
        if action.required and action.option_strings:
            name += " (required)"
        default = "" if action.default in (None, False, argparse.SUPPRESS) else f"`{action.default}`"
        text = _help(parser, action).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {name} | {default} | {text} |")
    return rows if len(rows) > 2 else []


def cli_reference() -> str:
    """The Markdown of the command-line reference."""
    from rlmpc.cli import build_parser

    parser = build_parser()
    lines = ["# Command line: `rlmpc`", "",
             "Generated when the site is built, from the parsers of `rlmpc.cli.build_parser()`: it is what "
             "`rlmpc COMMAND --help` prints.", "", (parser.description or "").strip(), ""]
    subs = _subcommands(parser)
    lines += ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#rlmpc-{name}) | {text} |" for name, text, _ in subs]
    for name, text, sub in subs:
        sub.prog = f"rlmpc {name}"
        lines += ["", f"## rlmpc {name}", "", text, "", "```text", sub.format_usage().strip(), "```", ""]
        lines += _options_table(sub)
        nested = _subcommands(sub)
        for nested_name, nested_text, nested_sub in nested:
            nested_sub.prog = f"rlmpc {name} {nested_name}"
            lines += ["", f"### rlmpc {name} {nested_name}", "", nested_text, "", "```text",
                      nested_sub.format_usage().strip(), "```", ""]
            lines += _options_table(nested_sub)
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the generated page (in memory: nothing is written into docs/)."""
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files
