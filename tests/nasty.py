"""Hypothesis strategies for adversarial input: the values that have broken doors before (NUL,
lone surrogates, huge and extreme numbers, dates whose UTC conversion overflows, deep nesting,
long strings), mixed with ordinary ones so that a parse goes past its first check."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NASTY_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "\u2028",
    "é" * 3,
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2021-01-01 09:15:27.243860",
    "1e999",
    "Event::Welcome",
    "x" * 10_000,
)
NASTY_NUMBERS = (0, -1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**63) - 1, 9e15, 1e308, -0.0, 0.5)

nasty_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NASTY_TEXT),
    st.sampled_from(NASTY_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
# Containers a scalar field should never hold, without the cost of generating them.
NASTY_CONTAINERS: tuple[Any, ...] = ([], {}, [None], {"a": {"b": [1]}}, [[[[[]]]]], {"": "\x00"})


def nasty_json(depth: int) -> st.SearchStrategy[Any]:
    """JSON values (lists and objects of the scalars above) nested up to ``depth``."""
    return st.recursive(
        nasty_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.one_of(st.text(max_size=5), st.sampled_from(NASTY_TEXT)), inner, max_size=3
            ),
        ),
        max_leaves=depth * 3,
    )


def deep() -> st.SearchStrategy[bytes]:
    """JSON nested past what a recursive parser allows (the stdlib's limit is ~1,000)."""
    return st.sampled_from([64, 955, 1_000, 10_000]).map(
        lambda n: b"[" * n + b"]" * n
    ) | st.sampled_from([955, 2_000]).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
