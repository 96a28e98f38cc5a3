"""`route_request`: one flow run per case, named after its reference, driving it hop by hop.

Each time it wakes it applies any decision typed into its resume forms, reads the ledger,
announces the open hop to its holder, and suspends until something changes. A decision arrives
either through a command (`rogatory decide` and the rest write the ledger first, then resume
the run with `recorded: true`) or through the Prefect UI's resume form, whose input goes through
the same engine command. Prefect re-runs the function from the top on every resume; because
every task acts on what the ledger says, that is harmless.

A form answered after the ledger moved on holds its input under a key the run no longer waits
on. The run therefore reads the inputs of every key it has used, not just the last one, and
applies each once (the key is the engine's idempotency key) or refuses it: the reason is logged
and told to the holder.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model

from models.commands import Command, Decide
from tasks.cases import announce_hop, apply_form_decisions, next_pause_key, read_case


def _form(command: type[Command], *, skip: set[str]) -> dict[str, Any]:
    """The fields of a typed command, as a resume form shows them (with their descriptions)."""
    return {
        name: (info.annotation, info)
        for name, info in command.model_fields.items()
        if name not in skip
    }


HopDecision = create_model(
    "HopDecision",
    __base__=RunInput,
    __doc__="The decision on the open hop (the Prefect UI shows this as the resume form).",
    **_form(Decide, skip={"reference", "idempotency_key", "seq"}),
    recorded=(
        bool,
        Field(
            False,
            description="True when the decision is already in the ledger (a command woke "
            "the run); leave it unticked",
        ),
    ),
)
"""Built from the `Decide` command: a field added there appears in the form."""


class Resubmitted(RunInput):
    """The requester answered a return (`rogatory resubmit` resumes the run with this)."""

    note: str | None = None


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
            suspend_flow_run(wait_for_input=HopDecision, key=key)
        # Reached only if the run was not suspended after all (the key was taken meanwhile):
        # go round again, which picks up whatever changed.
