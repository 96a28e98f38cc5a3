"""The checkpoint key and witness as a sweep finds them, and the seal each sweep ends with.

The signing key comes from the Prefect Secret block named by $ROGATORY_CHECKPOINT_KEY_SECRET
(its value: the key's PEM text), else from the file $ROGATORY_CHECKPOINT_KEY (created, mode
0600, on the first checkpoint), as apprise's configuration does (tasks/notify_sources.py).
Neither set: checkpoints are recorded unsigned, and `audit verify` says so.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from models.checkpoints import (
    WITNESS_NOTIFY_VARIABLE,
    CheckpointError,
    SealResult,
    Signer,
    Witness,
    seal,
    signer_from_env,
)
from models.ledger import Ledger

SECRET_VARIABLE = "ROGATORY_CHECKPOINT_KEY_SECRET"


def checkpoint_signer(*, ledger_url: str, create: bool = True) -> Signer | None:
    """The Secret block's key, else the key file's; None when neither is configured."""
    name = os.environ.get(SECRET_VARIABLE, "").strip()
    if not name:
        return signer_from_env(ledger_url=ledger_url, create=create)
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except Exception as exc:  # not found, or no Prefect server: say which and how to fix it
        raise CheckpointError(
            f"cannot read the checkpoint key from the Prefect Secret block {name!r} "
            f"(${SECRET_VARIABLE}): {exc}. Save the PEM text `rogatory audit keygen` wrote in "
            f"it, or unset ${SECRET_VARIABLE} to use the file $ROGATORY_CHECKPOINT_KEY"
        ) from exc
    if not isinstance(value, str):
        raise CheckpointError(
            f"the Prefect Secret block {name!r} holds {type(value).__name__}, not a PEM key"
        )
    return Signer.from_pem(value, where=f"the Prefect Secret block {name!r}")


def seal_now(ledger: Ledger, *, routings: Any, now: datetime, found_by: str) -> SealResult:
    """Verify what moved since the last checkpoint and seal the next one, as configured."""
    url = ledger.engine.url.render_as_string(hide_password=True)
    return seal(
        ledger,
        routings=routings,
        now=now,
        signer=checkpoint_signer(ledger_url=url),
        witness=Witness.from_env(ledger_url=url),
        found_by=found_by,
        notify=os.environ.get(WITNESS_NOTIFY_VARIABLE) == "1",
    )
