"""Prefect's Secret blocks as models/secrets.py reads them (Prefect imported on first read)."""

from __future__ import annotations


def prefect_secret(name: str) -> object:
    """The value of the Prefect Secret block `name`."""
    from prefect.blocks.system import Secret

    return Secret.load(name).get()  # type: ignore[union-attr]
