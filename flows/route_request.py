"""`route_request`: one flow run per case, named after its reference, driving it hop by hop.

Each time it wakes it applies any decision typed into its resume forms, reads the ledger,
announces the open hop to its holder, and suspends until something changes. A decision arrives
either through a command (`rogatory decide` and the rest write the ledger first, then wake the
run) or through the Prefect UI's resume form, whose input goes through the same engine command.
The form is built for the hop it waits on (tasks/cases.decision_form): the case above it, only
the decisions the hop allows, the hop filled in. Prefect re-runs the function from the top on
every resume; because every task acts on what the ledger says, that is harmless.

A form answered after the ledger moved on holds its input under a key the run no longer waits
on. The run therefore reads the inputs of every key it has used, not just the last one, and
applies each once (the key is the engine's idempotency key) or refuses it: the reason is logged
and told to the holder. A wake-up (`tasks.cases.Wake`) is recognised there and applies nothing.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput

from tasks.cases import (
    announce_hop,
    apply_form_decisions,
    decision_form,
    next_pause_key,
    read_case,
    read_hop_on_desk,
)


class Resubmitted(RunInput):
    """The requester answered a return: the run resumes with no input (the note, if any, is
    in the ledger's `resubmitted` event, sealed; Prefect never holds it)."""


@flow(name="route_request", flow_run_name="{reference}", log_prints=True)
def route_request(reference: str) -> str:
    """Drive one case until its ledger says it is closed."""
    logger = get_run_logger()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    while True:
        for refused in apply_form_decisions(reference, run_id):
            logger.warning(
                "decision on %s from the resume form not applied: %s", reference, refused
            )
        view = read_case(reference)
        if view.status == "closed":
            return f"{reference} closed: {view.outcome}"
        if view.status == "open":
            announce_hop(reference)
        key = next_pause_key(reference, run_id, view)
        if view.status == "with_requester":
            suspend_flow_run(wait_for_input=Resubmitted, key=key)
        else:
            suspend_flow_run(wait_for_input=decision_form(read_hop_on_desk(reference)), key=key)
        # Reached only if the run was not suspended after all (the key was taken meanwhile):
        # go round again, which picks up whatever changed.
