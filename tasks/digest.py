"""Prefect task for the coordinators' daily digest: record each country's digest once a day.

The digest is built from the ledger and each case's pinned routing; its delivery key is the
country and the day, so the sweep may ask every five minutes and a coordinator still gets one
message a day. Sending is the deliveries' usual stage (tasks/notify.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prefect import task

from models.clock import clock_from_env
from models.digest import DIGEST_HOUR, record_digests
from models.engine import Routings
from models.ledger import Ledger


def digest_now(
    ledger: Ledger,
    *,
    now: datetime | None = None,
    countries: Iterable[str] | None = None,
    from_hour: int | None = None,
) -> int:
    """Record today's digests not recorded yet; how many are new."""
    with ledger.transaction() as session:
        return record_digests(
            session,
            routings=Routings({}),
            now=now or clock_from_env().now(),
            countries=countries,
            from_hour=from_hour,
        )


@task(name="record-digests", retries=2, retry_delay_seconds=[2, 10])
def record_daily_digests() -> int:
    """Each country's digest, once its local day has reached the digest hour."""
    with Ledger() as ledger:
        return digest_now(ledger, from_hour=DIGEST_HOUR)
