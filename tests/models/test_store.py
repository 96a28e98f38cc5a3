"""The unit of work's memory: what a long batch may forget, and when it may not."""

from __future__ import annotations

import pytest

from models import engine
from models.errors import Conflict
from models.store import CaseStore
from tests.samples import intake


def test_a_released_case_is_read_back_from_the_ledger(ledger, clock, routings):
    with ledger.transaction() as session:
        kw = {"session": session, "clock": clock, "routings": routings}
        store = CaseStore.of(session)
        with engine.batch(session):
            ref = engine.register(**kw, data=intake()).reference
            held = store.case(ref)
            with pytest.raises(Conflict, match="not flushed yet"):
                store.release([ref])
        store.release([ref, "SV-2026-999999"])  # unknown references are ignored
        again = store.case(ref)
        assert again is not held
        assert (again.last_seq, again.head_hash, again.open.hop) == (
            held.last_seq,
            held.head_hash,
            1,
        )
        engine.decide(**kw, reference=ref, outcome="forwarded")
    with ledger.session() as session:
        assert CaseStore.of(session).case(ref).current_hop == 2
