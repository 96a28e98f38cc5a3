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
from models.secrets import secret_text

SECRET_VARIABLE = "ROGATORY_CHECKPOINT_KEY_SECRET"


def checkpoint_signer(*, ledger_url: str, create: bool = True) -> Signer | None:
    """The Secret block's key, else the key file's; None when neither is configured."""
    name = os.environ.get(SECRET_VARIABLE, "").strip()
    if not name:
        return signer_from_env(ledger_url=ledger_url, create=create)
    value = secret_text(
        name,
        variable=SECRET_VARIABLE,
        holds="the checkpoint key's PEM text",
        fix="Save the PEM text `rogatory audit keygen` wrote in it, or unset "
        f"${SECRET_VARIABLE} to use the file $ROGATORY_CHECKPOINT_KEY",
        error=CheckpointError,
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
