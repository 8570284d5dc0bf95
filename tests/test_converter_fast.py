"""The fast structure path gives what the detailed one gives: the same model, the same error.

``structure`` tries hooks generated without detailed validation first and re-runs the
detailed hook on failure. Here every outcome is compared with the detailed hook alone
(``converter.structure``), over hand-picked and generated bodies.
"""

from __future__ import annotations

from typing import Any

import cattrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import MAIN_KEY

from cldprov_async import AccessKey, AccessKeysResponse, ResponseValidationError
from cldprov_async._converter import _FAST, converter, structure


def _detailed(data: Any, cls: type) -> object:
    """What ``structure`` answered before the fast path: a model or the error's message."""
    if not isinstance(data, dict):
        return f"the answer is not a valid {cls.__name__}: expected a JSON object, got "
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        details = "; ".join(cattrs.transform_error(exc))
        text = f"the answer is not a valid {cls.__name__}: {details}"
        return ResponseValidationError(text, status_code=200, method="GET", path="/p").message


def _ours(data: Any, cls: type) -> object:
    try:
        return structure(data, cls, status=200, method="GET", path="/p")
    except ResponseValidationError as exc:
        assert (exc.status_code, exc.method, exc.path) == (200, "GET", "/p")
        return exc.message


def _same(data: Any, cls: type) -> None:
    want, got = _detailed(data, cls), _ours(data, cls)
    if isinstance(want, str) and not isinstance(data, dict):
        assert isinstance(got, str) and got.startswith(want)
    else:
        assert got == want


def _key(**changes: Any) -> dict[str, Any]:
    return {**MAIN_KEY, **changes}


CASES: list[Any] = [
    _key(),
    _key(api_secret=None),
    _key(name=None),
    _key(dedicated_for=["webhooks"]),
    _key(dedicated_for="webhooks"),
    _key(enabled="true"),
    _key(unknown={"nested": [1]}),
    _key(enabled="VALUE"),
    _key(api_secret=5),
    _key(api_secret=["x"]),
    _key(created_at=17),
    _key(updated_at="not a date"),
    _key(name=3),
    {k: v for k, v in MAIN_KEY.items() if k != "api_key"},
]


@pytest.mark.parametrize("body", CASES)
def test_a_key_fast_or_detailed_is_the_same(body: dict[str, Any]) -> None:
    _same(body, AccessKey)


@pytest.mark.parametrize(
    "body",
    [
        {"access_keys": [_key(), _key(name="b")], "total": 2},
        {"access_keys": []},
        {},
        {"access_keys": [_key()], "total": None},
        {"access_keys": [_key(), _key(enabled="VALUE")], "total": 2},
        {"access_keys": [_key()], "total": "2"},
        {"access_keys": [_key()], "total": True},
        {"access_keys": "abc"},
        {"access_keys": [_key(), "x"]},
        {"access_keys": (_key(),)},
    ],
)
def test_a_listing_fast_or_detailed_is_the_same(body: dict[str, Any]) -> None:
    _same(body, AccessKeysResponse)


def test_the_fast_path_is_taken_and_the_detailed_one_words_the_error() -> None:
    """Not a check that cannot fail: the fast hooks exist, and a bad second key's error
    names its index and field, as the detailed hooks word it."""
    assert set(_FAST) == {AccessKey, AccessKeysResponse}
    good = {"access_keys": [_key()], "total": 1}
    assert _FAST[AccessKeysResponse](good, AccessKeysResponse) == converter.structure(
        good, AccessKeysResponse
    )
    bad = {"access_keys": [_key(), _key(enabled="VALUE")]}
    with pytest.raises(Exception):  # noqa: B017 - any failure sends it to the detailed hook
        _FAST[AccessKeysResponse](bad, AccessKeysResponse)
    text = _ours(bad, AccessKeysResponse)
    assert isinstance(text, str)
    assert "access_keys[1].enabled" in text and "VALUE" not in text


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["2022-03-15T11:44:48Z", "true", "false", "webhooks", ""])
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
KEYS = st.builds(
    lambda base, changes: {**base, **changes},
    st.just(MAIN_KEY),
    st.dictionaries(st.sampled_from([*MAIN_KEY, "dedicated_for", "other"]), VALUES, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(KEYS)
def test_generated_keys_fast_or_detailed_are_the_same(body: dict[str, Any]) -> None:
    _same(body, AccessKey)


@settings(max_examples=200, deadline=None)
@given(st.lists(KEYS | VALUES, max_size=3), st.none() | VALUES)
def test_generated_listings_fast_or_detailed_are_the_same(keys: list[Any], total: Any) -> None:
    body: dict[str, Any] = {"access_keys": keys}
    if total is not None:
        body["total"] = total
    _same(body, AccessKeysResponse)
