"""`route_request`: one flow run per case, named after its reference, driving it hop by hop.

Each time it wakes it reads the ledger, announces the open hop to its holder, and suspends until
that hop is decided. A decision arrives either through `rogatory decide` (written to the ledger
first, then the run is resumed with `recorded: true`) or through the Prefect UI's resume form,
whose input is applied through the same engine command. Prefect re-runs the function from the
top on every resume; because every task acts on what the ledger says, that is harmless.
"""

from __future__ import annotations

from itertools import count

from prefect import flow, get_run_logger
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput

from models.domain import DelayCause, Outcome, RefusalGround
from tasks.cases import announce_hop, apply_decision, input_key, read_case


class HopDecision(RunInput):
    """The decision on the open hop (the Prefect UI shows this as the resume form)."""

    hop: int
    outcome: Outcome
    ground: RefusalGround | None = None
    cause: DelayCause | None = None
    note: str | None = None
    recorded: bool = False
    """True when the decision is already in the ledger (`rogatory decide` resumed the run)."""


class Resubmitted(RunInput):
    """The requester answered a return (`rogatory resubmit` resumes the run with this)."""

    note: str | None = None


@flow(name="route_request", flow_run_name="{reference}", log_prints=True)
def route_request(reference: str) -> str:
    """Drive one case until its ledger says it is closed."""
    logger = get_run_logger()
    while True:
        view = read_case(reference)
        if view.status == "closed":
            return f"{reference} closed: {view.outcome}"
        if view.status == "open":
            announce_hop(reference)
        for attempt in count():
            key = input_key(reference, view, attempt)
            if view.status == "with_requester":
                suspend_flow_run(wait_for_input=Resubmitted, key=key)
                decision = None
            else:
                decision = suspend_flow_run(wait_for_input=HopDecision, key=key)
            if decision is not None and not decision.recorded:
                refused = apply_decision(reference, decision.model_dump(mode="json"), key)
                if refused:
                    # The engine refused the UI's input: say why and ask again, new key.
                    logger.warning(
                        "decision on %s hop %s refused: %s", reference, view.hop, refused
                    )
                    continue
            if read_case(reference).last_seq != view.last_seq:
                break
            # Woken with nothing new in the ledger: wait again, under the next key.
