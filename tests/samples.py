"""The sample request the tests register: an outgoing Salvadoran MLA request to Spain."""

from __future__ import annotations

from typing import Any


def intake(**changes: Any) -> dict[str, Any]:
    """A valid intake; `changes` override or add fields."""
    base: dict[str, Any] = {
        "country": "SV",
        "direction": "outgoing",
        "kind": "mla",
        "legal_basis": "uncac",
        # SV: 15 years (CPP art. 32); since 2021 its bribery never prescribes.
        "offence_category": "money_laundering",
        "offence_date": "2024-05-10",
        "counterpart": "ES",
        "requesting_authority": "Fiscalía General de la República",
        "conducting_authority": "Unidad Anticorrupción",
        "subject": "bribery of a public official in procurement",
        "facts_summary": "payments routed through a Spanish account",
        "assistance_sought": "bank records",
        "purpose": "trace the payments",
    }
    base.update(changes)
    return base
