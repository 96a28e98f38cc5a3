"""The ledger's JSON text: the encoders built once (models.ledger.canonical and dumps) write
exactly what json writes with the same options. The hash chain covers this text: one character
of difference would make every new event's hash disagree with a verifier's."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from models.ledger import canonical, dumps

CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.dates()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(encode: Any, value: Any) -> Any:
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        return type(exc)


@given(values)
def test_canonical_text_is_json_s_with_the_same_options(value: Any) -> None:
    assert _outcome(canonical, value) == _outcome(CANONICAL.encode, value)


@given(values)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert _outcome(dumps, value) == _outcome(json.dumps, value)


def test_the_awkward_cases_agree() -> None:
    for value in (
        {
            "é": "ü\u2028\x00\ud800",
            "nan": float("nan"),
            "inf": float("-inf"),
            "day": date(2020, 1, 1),
        },
        {"z": {"y": [{"x": -0.0, "big": 1e300}]}},
        {1: "a", "b": 2},  # mixed keys: refused by both when sorting
        "a string alone",
        (1, 2),
    ):
        assert _outcome(canonical, value) == _outcome(CANONICAL.encode, value)
        assert _outcome(dumps, value) == _outcome(json.dumps, value)
