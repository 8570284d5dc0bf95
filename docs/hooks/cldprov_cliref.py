"""mkdocs hook: the command-line reference, generated from the argparse parsers at build time.

Nothing here is committed as Markdown: every build asks the parsers themselves (``PARSERS``)
for each command, subcommand, argument and option, with its metavar, choices, default and
help, so the page cannot drift from the code. A new subcommand or option appears with no
edit here; a new program is one more line in ``PARSERS``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Callable, Iterator

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "reference/cli.md"
#: (how it is run, module, the function that builds its parser).
PARSERS = [
    ("cldprov-async", "cldprov_async._cli", "build_parser"),
    ("python -m cldprov_async.testing", "cldprov_async.testing._cli", "_parser"),
]
#: Usage lines are wrapped as a terminal this wide would show them.
WIDTH = 80

INTRO = """\
# Command line

Generated from the programs' own argument parsers each time this site is built: every
command, argument and option below is what `--help` prints. `cldprov-async` is also
`python -m cldprov_async`.

Exit status of `cldprov-async`: 0 success; 1 an API error, a failed rotation, or an
`audit --max-age` finding; 2 a usage or configuration error (one line on stderr naming the
problem); 3 another rotation of the account holds its rotation lock (`rotate` only); 130
interrupted.

Credentials come from `CLOUDINARY_ACCOUNT_URL` (or `--account-url`). Tables and JSON go to
stdout; progress, summaries and errors to stderr. Existing keys' secrets are masked unless
`--show-secrets`; `keys generate` prints the new key's secret once, labelled; `rotate` puts
new secrets only in `--jsonl`/`--json` (`new_api_secret`); `audit` never prints one. An AGE
is `90d`, `12h`, `30m`, `45s` or plain seconds.
"""


def parser_of(module: str, function: str) -> argparse.ArgumentParser:
    """A fresh parser from ``module.function()``."""
    build: Callable[[], argparse.ArgumentParser] = getattr(
        importlib.import_module(module), function
    )
    return build()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help(action: argparse.Action, prog: str) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    try:
        return action.help % {**vars(action), "prog": prog}
    except (KeyError, TypeError, ValueError):
        return action.help


def _name(action: argparse.Action) -> str:
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if not action.option_strings:
        return f"`{metavar or action.dest}`"
    takes_value = action.nargs != 0
    shown = metavar or (action.dest.upper() if action.choices is None else "")
    suffix = f" {shown}" if takes_value and shown else ""
    return ", ".join(f"`{opt}{suffix}`" for opt in action.option_strings)


def _facts(action: argparse.Action) -> list[str]:
    facts = []
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        facts.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.nargs in ("*", "+") or isinstance(action, argparse._AppendAction):
        facts.append("repeatable" if action.option_strings else "several allowed")
    if action.nargs == "?" and not action.option_strings:
        facts.append("optional")
    if action.required and action.option_strings:
        facts.append("required")
    shown_default = action.default not in (None, False, argparse.SUPPRESS, [])
    if shown_default and action.nargs != 0 and "default" not in (action.help or ""):
        facts.append(f"default: `{action.default}`")
    return facts


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, aliases folded into their first name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, helps.get(name, ""), sub


def command(title: str, parser: argparse.ArgumentParser, level: int, summary: str = "") -> str:
    """One command's section, and its subcommands' sections below it."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=WIDTH)
    out = [f"{'#' * level} `{title}`", ""]
    for text in (summary, parser.description):
        if text:
            out += [text, ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [
        f"| {_name(a)} | {_cell('; '.join([_help(a, parser.prog), *_facts(a)]).strip('; '))} |"
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction) and a.help != argparse.SUPPRESS
    ]
    if rows:
        out += ["| argument or option | what it does |", "|---|---|", *rows, ""]
    subs = list(_subcommands(parser))
    if subs:
        out += ["| command | what it does |", "|---|---|"]
        out += [f"| `{title} {name}` | {_cell(text)} |" for name, text, _ in subs]
        out.append("")
    if parser.epilog:
        out += [parser.epilog, ""]
    for name, text, sub in subs:
        out.append(command(f"{title} {name}", sub, min(level + 1, 6), text))
    return "\n".join(out)


def page() -> str:
    """The whole CLI reference, in Markdown."""
    sections = [INTRO]
    for title, module, function in PARSERS:
        sections.append(command(title, parser_of(module, function), 2))
    return "\n".join(sections)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated CLI reference page to the site's files."""
    files.append(File.generated(config, PAGE, content=page()))
    return files
