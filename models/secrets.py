"""Text kept in a Prefect Secret block: the apprise config, the master key, the checkpoint key.

The one place rogatory reads a Secret block. Prefect is imported only when a block is named, so
nothing else under models/ needs Prefect, and a command without one never imports it.
"""

from __future__ import annotations


def secret_text(name: str, *, variable: str, holds: str, fix: str, error: type[Exception]) -> str:
    """The text the Secret block `name` (named by $`variable`) holds, as `holds` says it should.

    Raises `error` saying which block, why (not found, no Prefect server, not text) and `fix`.
    """
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except Exception as exc:  # not found, or no Prefect server: say which and how to fix it
        raise error(
            f"cannot read {holds} from the Prefect Secret block {name!r} (${variable}): {exc}. "
            f"{fix}"
        ) from exc
    if not isinstance(value, str):
        raise error(f"the Prefect Secret block {name!r} holds {type(value).__name__}, not {holds}")
    return value
