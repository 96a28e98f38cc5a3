"""Text kept in a Prefect Secret block: the apprise config, the master key, the checkpoint key.

The one place rogatory reads a Secret block. models/ knows nothing of Prefect: the layer that
does gives its reader with `read_with` when it is imported (tasks/__init__.py, which app/
imports too). A process that never imported it is told so, by name, never left to fall back on
a key file of its own.
"""

from __future__ import annotations

from collections.abc import Callable

_reader: Callable[[str], object] | None = None


def read_with(reader: Callable[[str], object]) -> None:
    """Read Secret blocks with `reader` (name -> the block's value) from now on."""
    global _reader
    _reader = reader


def secret_text(name: str, *, variable: str, holds: str, fix: str, error: type[Exception]) -> str:
    """The text the Secret block `name` (named by $`variable`) holds, as `holds` says it should.

    Raises `error` saying which block, why (not found, no Prefect server, not text) and `fix`.
    """
    try:
        if _reader is None:
            raise LookupError("this process has no reader of Secret blocks (import tasks)")
        value = _reader(name)
    except Exception as exc:  # not found, or no Prefect server: say which and how to fix it
        raise error(
            f"cannot read {holds} from the Prefect Secret block {name!r} (${variable}): {exc}. "
            f"{fix}"
        ) from exc
    if not isinstance(value, str):
        raise error(f"the Prefect Secret block {name!r} holds {type(value).__name__}, not {holds}")
    return value
