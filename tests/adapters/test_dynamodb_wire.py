"""The DynamoDB adapter writes items in DynamoDB's typed JSON itself (boto3 stays off the cold
start): what it writes is what boto3's TypeSerializer writes, and it refuses what boto3 refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from hookline.adapters.dynamodb import serialize, to_dynamo

_numbers = st.integers(min_value=-(10**37), max_value=10**37) | st.floats(
    allow_nan=False, allow_infinity=False, width=32
)
_scalars = st.none() | st.booleans() | _numbers | st.text(max_size=8) | st.binary(max_size=4)
_sets = (
    st.frozensets(st.text(max_size=4), min_size=1, max_size=3)
    | st.frozensets(st.integers(-1000, 1000), min_size=1, max_size=3)
    | st.frozensets(st.binary(min_size=1, max_size=3), min_size=1, max_size=3)
)
_values = st.recursive(
    _scalars | _sets,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


def _canonical(attribute: Any) -> Any:
    """Set members in a fixed order (DynamoDB sets are unordered)."""
    if isinstance(attribute, dict):
        return {
            kind: sorted(value) if kind in ("SS", "NS", "BS") else _canonical(value)
            for kind, value in attribute.items()
        }
    if isinstance(attribute, list):
        return [_canonical(v) for v in attribute]
    return attribute


@given(_values)
def test_values_are_written_as_boto3_writes_them(value: Any) -> None:
    stored = to_dynamo(value)
    if isinstance(stored, frozenset):
        stored = set(stored)  # boto3 recognises set, not frozenset
    expected = TypeSerializer().serialize(stored)
    assert _canonical(serialize(stored)) == _canonical(expected)


@pytest.mark.parametrize(
    "value",
    [
        0.5,  # floats go through to_dynamo first, as boto3 requires
        Decimal("NaN"),
        Decimal("Infinity"),
        10**40 + 1,  # more than 38 significant digits
        {"a", 1},
        {0.5},
        object(),
    ],
)
def test_what_dynamodb_cannot_store_is_refused(value: Any) -> None:
    with pytest.raises(Exception) as boto3_error:
        TypeSerializer().serialize(value)
    with pytest.raises(type(boto3_error.value)):
        serialize(value)
