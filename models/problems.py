"""Cases the system could not process: recorded, told once, resolved when they work again.

The sweep, reconciliation, reports and case flows each handle one case at a time; a case that
fails (an unreadable pinned routing, a deadline past the calendar's range, a flow run that
failed) becomes a `case_problems` row instead of stopping the others. The admin and the
country's coordinator get one notice per distinct problem; the row counts how often it came
back, and is marked resolved once the case goes through again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import deliveries
from models.domain import Role
from models.ledger import CaseProblem, insert_if_absent
from models.notices import ADMIN_TAG, Notice, problem_digest, problem_notice


@dataclass(frozen=True)
class Failure:
    """One case that could not be processed at one stage, and why."""

    reference: str
    request_id: int | None
    country: str
    stage: str
    message: str

    @classmethod
    def of(
        cls, exc: BaseException, *, reference: str, request_id: int | None, country: str, stage: str
    ) -> Failure:
        text = str(exc).strip() or type(exc).__name__
        return cls(reference, request_id, country, stage, f"{type(exc).__name__}: {text}")


def record_failures(
    session: Session,
    failures: Sequence[Failure],
    *,
    coordinators: dict[str, str],
    now: datetime,
    tags: Sequence[str] = (),
    notice: Callable[..., Notice] = problem_notice,
) -> int:
    """Record each failure (once per case and problem) and tell; how many were new.

    `coordinators` maps a country code to its coordinator's apprise tag, where it is known;
    `tags` are told besides the admin (the auditors, of a case that does not verify), in the
    words of `notice` (called like `problem_notice`).
    """
    if not failures:
        return 0
    connection = session.connection()
    new = []
    for f in failures:
        digest = problem_digest(f.stage, f.message)
        inserted = insert_if_absent(
            connection,
            CaseProblem,
            {
                "request_id": f.request_id,
                "reference": f.reference,
                "stage": f.stage,
                "digest": digest,
                "message": f.message,
                "first_seen_at": now,
                "last_seen_at": now,
                "occurrences": 1,
                "resolved_at": None,
            },
        )
        if inserted:
            new.append(f)
        else:
            session.execute(
                update(CaseProblem)
                .where(CaseProblem.reference == f.reference, CaseProblem.digest == digest)
                .values(
                    last_seen_at=now,
                    occurrences=CaseProblem.occurrences + 1,
                    resolved_at=None,
                )
            )
    deliveries.record(
        connection,
        [
            notice(
                reference=f.reference,
                request_id=f.request_id,
                stage=f.stage,
                message=f.message,
                tags=sorted(
                    {
                        ADMIN_TAG,
                        *tags,
                        *([coordinators[f.country]] if f.country in coordinators else []),
                    }
                ),
                now=now,
            )
            for f in new
        ],
        now=now,
    )
    return len(new)


def _tags(failure: Failure, coordinators: dict[str, str]) -> list[str]:
    coordinator = coordinators.get(failure.country)
    return sorted({ADMIN_TAG, coordinator} if coordinator else {ADMIN_TAG})


def resolve(session: Session, *, stage: str, worked: Iterable[str], now: datetime) -> int:
    """Mark the open problems of `stage` resolved for the cases that went through this time."""
    open_refs = set(
        session.scalars(
            select(CaseProblem.reference).where(
                CaseProblem.stage == stage, CaseProblem.resolved_at.is_(None)
            )
        )
    )
    done = sorted(open_refs.intersection(worked))
    if not done:
        return 0
    result = session.execute(
        update(CaseProblem)
        .where(
            CaseProblem.stage == stage,
            CaseProblem.resolved_at.is_(None),
            CaseProblem.reference.in_(done),
        )
        .values(resolved_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def coordinator_tags(configs: Iterable[Any]) -> dict[str, str]:
    """Country code -> coordinator tag, from routings (their `config`): the files in force
    that load, then the given ones (the versions the cases pinned), which take precedence.

    A case whose own pinned version cannot be read still has its coordinator told, from the
    country's file in force.
    """
    from models.loader import load_available

    out: dict[str, str] = {}
    for routing in [*load_available()[0].values(), *configs]:
        tag = routing.config.contacts.get(Role.COORDINATOR)
        if tag:
            out[routing.country] = tag
    return out


def listed(session: Session, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    """Recorded problems, the most recent first."""
    query = select(
        CaseProblem.reference,
        CaseProblem.stage,
        CaseProblem.message,
        CaseProblem.first_seen_at,
        CaseProblem.last_seen_at,
        CaseProblem.occurrences,
        CaseProblem.resolved_at,
    )
    if not include_resolved:
        query = query.where(CaseProblem.resolved_at.is_(None))
    return [
        dict(r._mapping) for r in session.execute(query.order_by(CaseProblem.last_seen_at.desc()))
    ]
