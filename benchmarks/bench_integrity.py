"""What tamper detection costs, on bench_api's 200,000-case simulated SQLite ledger (a fresh copy
per run, upgraded to the current schema), with a signing key and a witness in a temporary folder:

    integrity_first_checkpoint_s    the first checkpoint of a ledger that had none: every case
                                    verified (chain, head, projections) and sealed, the witness's
                                    first line holding all 200,000 heads
    integrity_sweep_checkpoint_s    what each sweep adds after 500 commands: the cases that moved
                                    plus the rolling slice of 1,000 verified, the heads compared,
                                    the Merkle root folded twice (the last one's, checked, and the
                                    new one), signed and witnessed; budget 5 s, under 2 % of the
                                    five-minute interval between sweeps
    integrity_merkle_root_s         one fold of the 200,000 heads (inside the figure above)
    integrity_audit_verify_s        `audit verify` of every case against its events and the
                                    witness's latest checkpoint
    integrity_case_load_median_us   a command's load of its case, with the head check (the
                                    note gives it without)
    integrity_decide_p95_ms         engine decide (forwarded), one per transaction, SQLite with
                                    synchronous=FULL, on distinct open cases: the load with the
                                    head check; the note gives the same without it (the previous
                                    load query), measured in alternating blocks

`python -m benchmarks.bench_integrity` prints the figures without merging them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from benchmarks import Result

COMMANDS = 500
DECIDES = 300
BLOCK = 25


def _copy(folder: Path) -> str:
    from benchmarks.bench_api import ledger_file

    source = ledger_file()
    target = folder / "ledger.db"
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def _open_cases(ledger: Any, count: int) -> list[str]:
    """Open cases whose open hop may be forwarded, spread over the ledger."""
    from sqlalchemy import select

    from models.engine import Routings
    from models.ledger import Request, Step

    routings = Routings({})
    found = []
    with ledger.session() as session:
        rows = session.execute(
            select(Request.reference, Request.routing_version, Request.route_id, Step.step_index)
            .join(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
            .where(Request.status == "open")
            .order_by(Request.id)
        ).all()
        for row in rows[:: max(1, len(rows) // (count * 3))]:
            routing = routings.pinned(session, row.routing_version)
            allowed = routing.config.route(row.route_id).decisions_for(row.step_index)
            if "forwarded" in {str(o) for o in allowed}:
                found.append(row.reference)
    return found


@lru_cache(maxsize=1)
def _unchecked_statement() -> Any:
    """The load query before the head check: the case joined with its open hop only."""
    from sqlalchemy import bindparam, select

    from models.ledger import Request, Step
    from models.store import _CASE_LOADED, _HOP_FIELDS

    return (
        select(
            *[getattr(Request, n) for n in _CASE_LOADED], *[getattr(Step, n) for n in _HOP_FIELDS]
        )
        .outerjoin(Step, (Step.request_id == Request.id) & (Step.hop == Request.current_hop))
        .where(Request.reference == bindparam("reference"))
    )


def _unchecked_case(self: Any, reference: str) -> Any:
    """CaseStore.case as it was before the head check."""
    from models.errors import NotFound
    from models.store import _CASE_LOADED, _HOP_FIELDS, Case, Hop

    found = self.cases.get(reference)
    if found is not None:
        return found
    row = self.session.execute(_unchecked_statement(), {"reference": reference}).first()
    if row is None:
        raise NotFound(f"no case {reference!r}")
    values = list(row)
    case = Case(**dict(zip(_CASE_LOADED, values[: len(_CASE_LOADED)], strict=True)))
    case.base_seq = case.last_seq
    hop = dict(zip(_HOP_FIELDS, values[len(_CASE_LOADED) :], strict=True))
    if hop["hop"] is not None:
        case.open = Hop(**hop)
    self.cases[reference] = case
    return case


def _decide_latencies(ledger: Any, references: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds per decide, with the head check and without, in alternating blocks."""
    from models import engine
    from models.clock import SystemClock
    from models.engine import Routings
    from models.store import CaseStore

    clock = SystemClock()
    routings = Routings({})
    checked_case: Callable[..., Any] = CaseStore.case
    timings: tuple[list[float], list[float]] = ([], [])
    for start in range(0, len(references), BLOCK):
        block = references[start : start + BLOCK]
        unchecked = (start // BLOCK) % 2 == 1
        CaseStore.case = _unchecked_case if unchecked else checked_case  # type: ignore[method-assign]
        try:
            for reference in block:
                began = time.perf_counter()
                with ledger.transaction() as session:
                    engine.decide(
                        session=session,
                        clock=clock,
                        routings=routings,
                        reference=reference,
                        outcome="forwarded",
                    )
                timings[unchecked].append((time.perf_counter() - began) * 1000)
        finally:
            CaseStore.case = checked_case  # type: ignore[method-assign]
    return timings


def _load_costs(ledger: Any, references: list[str]) -> tuple[list[float], list[float]]:
    """Microseconds per case load (CaseStore.case, read only), with the head check and
    without, alternating case by case over several rounds."""
    from models.store import CaseStore

    checked_case: Callable[..., Any] = CaseStore.case
    timings: tuple[list[float], list[float]] = ([], [])
    with ledger.session() as session:
        for _ in range(5):
            for n, reference in enumerate(references):
                unchecked = n % 2 == 1
                store = CaseStore(session)
                load = _unchecked_case if unchecked else checked_case
                began = time.perf_counter()
                load(store, reference)
                timings[unchecked].append((time.perf_counter() - began) * 1e6)
    return timings


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def _commands(ledger: Any, references: list[str]) -> None:
    """A decision on each of these cases, one per transaction."""
    from models import engine
    from models.clock import SystemClock
    from models.engine import Routings

    clock, routings = SystemClock(), Routings({})
    for reference in references:
        with ledger.transaction() as session:
            engine.decide(
                session=session,
                clock=clock,
                routings=routings,
                reference=reference,
                outcome="forwarded",
            )


def run() -> list[Result]:
    from models.checkpoints import Signer, Witness, audit, merkle_root, seal, snapshot, stored_seals
    from models.clock import SystemClock
    from models.engine import Routings
    from models.ledger import Ledger

    folder = Path(tempfile.mkdtemp(prefix="rogatory-integrity-", dir=os.environ.get("TMPDIR")))
    apart = Path(tempfile.mkdtemp(prefix="rogatory-witness-"))
    try:
        url = _copy(folder)
        ledger = Ledger(url, migrate=True)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        signer = Signer(Ed25519PrivateKey.generate())
        witness = Witness(apart / "checkpoints.jsonl")
        now = SystemClock().now()

        def sealed(at: Any) -> Any:
            return seal(
                ledger,
                routings=Routings({}),
                now=at,
                signer=signer,
                witness=witness,
                found_by="benchmark",
            )

        began = time.perf_counter()
        first = sealed(now)
        first_s = time.perf_counter() - began
        _say(f"first checkpoint {first_s:.1f} s")
        assert first.checkpoint == 1 and not first.findings, first.findings[:3]
        witness_mib = witness.path.stat().st_size / 2**20

        references = _open_cases(ledger, COMMANDS + DECIDES)
        moved, deciding = references[:COMMANDS], references[COMMANDS : COMMANDS + DECIDES]
        _commands(ledger, moved)
        began = time.perf_counter()
        second = sealed(now + timedelta(minutes=5))
        sweep_s = time.perf_counter() - began
        _say(f"sweep checkpoint {sweep_s:.2f} s")
        assert second.checkpoint == 2 and not second.findings, second.findings[:3]

        with snapshot(ledger) as session:
            seals = stored_seals(session)
        began = time.perf_counter()
        merkle_root(seals)
        root_s = time.perf_counter() - began

        began = time.perf_counter()
        verified = audit(
            ledger,
            routings=Routings({}),
            verifier=signer.verifier,
            witness=witness,
            now=now + timedelta(minutes=6),
            record=False,
        )
        audit_s = time.perf_counter() - began
        _say(f"audit verify {audit_s:.1f} s")
        assert not verified.findings, verified.findings[:3]

        loads, bare_loads = _load_costs(ledger, moved)
        checked, unchecked = _decide_latencies(ledger, deciding)
        ledger.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(apart, ignore_errors=True)
    cases = first.cases
    where = f"{cases:,}-case SQLite ledger (bench_api's simulated one, a fresh copy)"
    return [
        Result(
            "integrity_first_checkpoint_s",
            round(first_s, 1),
            "s",
            None,
            "lower",
            note=f"every case of a {where} verified and sealed once; witness line "
            f"{witness_mib:.1f} MiB",
        ),
        Result(
            "integrity_sweep_checkpoint_s",
            round(sweep_s, 2),
            "s",
            5.0,
            "lower",
            note=f"after {COMMANDS} commands: {second.verified:,} cases verified (moved + "
            f"rolling slice), {second.sealed} heads sealed anew, signed and witnessed; {where}",
        ),
        Result(
            "integrity_merkle_root_s",
            round(root_s, 3),
            "s",
            None,
            "lower",
            note=f"one fold of {cases:,} heads",
        ),
        Result(
            "integrity_audit_verify_s",
            round(audit_s, 1),
            "s",
            None,
            "lower",
            note=f"every chain, head and projection of a {where}, against the witness "
            f"({verified.cases:,} cases, {verified.cases / audit_s:,.0f} cases/s)",
        ),
        Result(
            "integrity_case_load_median_us",
            round(statistics.median(loads), 1),
            "us",
            None,
            "lower",
            note=f"a command's load of its case (CaseStore.case, read only) with the head check "
            f"(last event joined, hashed again; tampered mark joined); without it "
            f"{statistics.median(bare_loads):.1f} us; p95 {_p95(loads):.1f} vs "
            f"{_p95(bare_loads):.1f} us; {len(loads)} + {len(bare_loads)} loads, alternating",
        ),
        Result(
            "integrity_decide_p95_ms",
            round(_p95(checked), 2),
            "ms",
            None,
            "lower",
            note=f"with the head check; without it {_p95(unchecked):.2f} ms (median "
            f"{statistics.median(checked):.2f} vs {statistics.median(unchecked):.2f} ms); "
            f"{len(checked)} + {len(unchecked)} decides, one per transaction, alternating "
            f"blocks of {BLOCK}; {where}",
        ),
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
