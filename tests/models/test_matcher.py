"""`Matcher.matches` is the quick yes/no of `Matcher.mismatches`, for every request."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.config import Matcher
from models.domain import Direction, Kind, LegalBasis

STATES = ["ES", "FR", "US", "RU"]

matchers = st.builds(
    Matcher,
    kind=st.none() | st.lists(st.sampled_from(list(Kind)), min_size=1, unique=True),
    direction=st.none() | st.sampled_from(list(Direction)),
    legal_basis=st.none() | st.lists(st.sampled_from(list(LegalBasis)), min_size=1, unique=True),
    coercive=st.none() | st.booleans(),
    urgent=st.none() | st.booleans(),
    counterpart=st.none() | st.lists(st.sampled_from(STATES), min_size=1, unique=True),
)
requests = st.fixed_dictionaries(
    {
        "kind": st.sampled_from([k.value for k in Kind]),
        "direction": st.sampled_from([d.value for d in Direction]),
        "legal_basis": st.sampled_from([b.value for b in LegalBasis]),
        "coercive": st.booleans(),
        "urgent": st.booleans(),
        "counterpart": st.sampled_from(STATES),
    }
)


@given(matcher=matchers, request=requests)
def test_matches_agrees_with_mismatches(matcher: Matcher, request: dict[str, object]) -> None:
    assert matcher.matches(request) == (matcher.mismatches(request) == [])


def test_matches_refuses_a_request_outside_any_listed_field() -> None:
    matcher = Matcher(kind=[Kind.MLA], direction=Direction.OUTGOING, coercive=True)
    fits = {"kind": "mla", "direction": "outgoing", "coercive": True}
    assert matcher.matches(fits)
    assert not matcher.matches({**fits, "kind": "extradition"})
    assert not matcher.matches({**fits, "coercive": False})
