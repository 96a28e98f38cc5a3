"""The `rogatory` command line: validate configs, register and move cases, query the ledger.

Commands that only touch configs or the ledger never start Prefect; `decide` resumes the case's
flow after the decision is safely in the ledger, and says so when no server answers. The parser
is built from light modules only: a command's heavy imports (the ledger, pydantic models,
numpy, Prefect) happen in its handler, or in its `build` when that command is chosen.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from models.errors import ConfigError, IntakeError, RogatoryError

Handler = Callable[[argparse.Namespace], int]
Build = Callable[[argparse.ArgumentParser], None]

# Each module exposes `register(subparsers)` and adds its own subcommands; it imports only light
# modules, so `rogatory --help` and every command start without the others' dependencies.
COMMAND_MODULES = (
    "app.commands",
    "app.case_commands",
    "app.ops",
    "app.users",
    "app.demo",
    "app.simulation",
    "app.reporting",
    "app.health",
    "app.ministry_cli",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    # Messages quote names from files and requests: shown printable, like every other output.
    except ConfigError as exc:
        print(printable(str(exc)), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found.", file=sys.stderr)
        return 1
    except IntakeError as exc:
        print(printable(str(exc)), file=sys.stderr)
        return 1
    except RogatoryError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rogatory",
        description="Route legal-assistance requests through each country's chain of authorities.",
    )
    parser.register("action", "parsers", Commands)
    sub = parser.add_subparsers(metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose options may be added only once that subcommand is chosen.

    `sub.add_parser(name, help=..., build=add_options)`: `add_options(parser)` runs when `name`
    is on the command line, so options made from pydantic models cost nothing to the others.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._builds: dict[str, tuple[argparse.ArgumentParser, Build]] = {}

    def add_parser(
        self, name: str, *, build: Build | None = None, **kwargs: Any
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        if build is not None:
            self._builds[name] = (parser, build)
        return parser

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        pending = self._builds.pop(values[0], None)
        if pending is not None:
            chosen, build = pending
            build(chosen)
        super().__call__(parser, namespace, values, option_string)


# -- helpers shared by the command modules -------------------------------------------------------


def instant(text: str, tz: str | None = None) -> datetime:
    """An instant from the command line: `2026-12-23`, `2026-12-23T15:00`, with or without zone.

    Without a zone the text is read in `tz`, else $ROGATORY_TZ, else UTC.
    """
    import pendulum

    try:
        parsed = pendulum.parse(text, tz=tz or os.environ.get("ROGATORY_TZ", "UTC"))
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or date-time ({exc})") from None
    if not isinstance(parsed, datetime):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or date-time")
    return datetime.fromtimestamp(parsed.timestamp(), UTC)


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


_CONTROLS = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in "\n\t"
}


def printable(text: str) -> str:
    """`text` with C0 and C1 control characters but newline and tab shown as `\\x1b` escapes.

    Names come from country files: one holding an escape sequence or a carriage return would
    otherwise recolour, overwrite or hide what the clerk reads on the terminal.
    """
    return text.translate(_CONTROLS)


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print JSON with --json (json.dumps escapes C0 controls), else the printable human text."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
    else:
        print(printable(text))


def config_paths(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
