"""The fast structure path gives what the converter gives: the same model, the same error.

``structure`` tries a hand-written builder first (``_FAST``) and takes the converter's own
hook when it raises. Here each builder is shown to read every field of its model, and every
outcome is compared with the converter alone (``converter.structure``), over hand-picked and
generated bodies.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import MAIN_KEY

from cldprov_async import AccessKey, AccessKeysResponse, ResponseValidationError, SuccessResponse
from cldprov_async._converter import _FAST, _envs_listed, converter, structure
from cldprov_async.models import (
    ProductEnvironment,
    ProductEnvironmentAccessKey,
    ProductEnvironmentsResponse,
)


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


ENV_KEY = {"key": "k1", "enabled": True, "secret": "s1"}
ENV = {
    "id": "e1",
    "name": "env",
    "cloud_name": "cloud",
    "enabled": True,
    "created_at": "2022-03-15T11:44:48Z",
    "updated_at": "2023-08-10T09:23:45+02:00",
    "api_access_keys": [ENV_KEY],
}
#: Per model built by hand: two usual JSON values for each of its fields. The first ones make
#: the base body; the second, put in one at a time, must change that field and only it.
FIELDS: dict[type, dict[str, tuple[Any, Any]]] = {
    AccessKey: {
        "name": ("a", "b"),
        "api_key": ("1", "2"),
        "created_at": ("2022-03-15T11:44:48Z", "2022-03-15T11:44:48.5+05:30"),
        "updated_at": ("2023-08-10T09:23:45Z", "2024-01-01T00:00:00Z"),
        "enabled": (True, False),
        "api_secret": ("s", None),
        "dedicated_for": ([], ["webhooks"]),
    },
    AccessKeysResponse: {
        "access_keys": ([MAIN_KEY], [MAIN_KEY, _key(name="b")]),
        "total": (1, None),
    },
    SuccessResponse: {"message": ("ok", "deleted")},
    ProductEnvironmentAccessKey: {
        "key": ("k1", "k2"),
        "enabled": (True, False),
        "secret": ("s1", None),
    },
    ProductEnvironment: {
        "id": ("e1", "e2"),
        "name": ("env", ""),
        "cloud_name": ("cloud", "other"),
        "enabled": (True, False),
        "created_at": ("2022-03-15T11:44:48Z", None),
        "updated_at": (None, "2023-08-10T09:23:45+02:00"),
        "api_access_keys": ([ENV_KEY], [ENV_KEY, {**ENV_KEY, "key": "k2", "secret": None}]),
    },
    ProductEnvironmentsResponse: {"sub_accounts": ([ENV], [ENV, {**ENV, "id": "e2"}])},
}


def test_every_model_built_by_hand_has_samples_for_every_field() -> None:
    assert set(_FAST) == set(FIELDS)
    for cls, samples in FIELDS.items():
        assert set(samples) == {f.name for f in attrs.fields(cls)}, cls.__name__


@pytest.mark.parametrize(
    ("cls", "name"), [(cls, name) for cls, samples in FIELDS.items() for name in samples]
)
def test_the_hand_path_reads_each_field_as_the_converter_does(cls: type, name: str) -> None:
    """Each field, changed alone, changes the hand-built model as it changes the converter's:
    a field the builder forgot, or took from the wrong key, fails here."""
    base = {field: values[0] for field, values in FIELDS[cls].items()}
    changed = {**base, name: FIELDS[cls][name][1]}
    for body in (base, changed, {**changed, "unknown": {"nested": [1]}}):
        assert _FAST[cls](body) == converter.structure(body, cls)  # no fallback: usual bodies
    before, after = _FAST[cls](base), _FAST[cls](changed)
    differs = [
        f.name for f in attrs.fields(cls) if getattr(before, f.name) != getattr(after, f.name)
    ]
    assert differs == [name]


def test_left_out_fields_take_the_models_defaults() -> None:
    for cls, samples in FIELDS.items():
        required = {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}
        body = {name: values[0] for name, values in samples.items() if name in required}
        assert _FAST[cls](body) == converter.structure(body, cls)


def test_the_fast_path_is_taken_and_the_detailed_one_words_the_error() -> None:
    """Not a check that cannot fail: a usual listing is built by hand, and a bad second key's
    error names its index and field, as the converter's detailed hooks word it."""
    good = {"access_keys": [_key()], "total": 1}
    assert _FAST[AccessKeysResponse](good) == converter.structure(good, AccessKeysResponse)
    bad = {"access_keys": [_key(), _key(enabled="VALUE")]}
    with pytest.raises(Exception):  # noqa: B017 - any failure sends it to the detailed hook
        _FAST[AccessKeysResponse](bad)
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


@pytest.mark.slow
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


ENV_KEYS = st.builds(
    lambda changes: {**ENV_KEY, **changes},
    st.dictionaries(st.sampled_from([*ENV_KEY, "other"]), VALUES, max_size=2),
)
ENVS = st.builds(
    lambda changes: {**ENV, **changes},
    st.dictionaries(
        st.sampled_from([*ENV, "other"]),
        VALUES | st.lists(ENV_KEYS | VALUES, max_size=2),
        max_size=3,
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(ENVS | VALUES, max_size=3))
def test_generated_environment_listings_fast_or_detailed_are_the_same(envs: list[Any]) -> None:
    _same({"sub_accounts": envs}, ProductEnvironmentsResponse)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["message", "other"]), VALUES, max_size=2))
def test_generated_success_answers_fast_or_detailed_are_the_same(body: dict[str, Any]) -> None:
    _same(body, SuccessResponse)


def test_items_built_slot_by_slot_have_an_init_that_only_sets_their_slots() -> None:
    """``_key_by_hand`` and the environment builders skip ``__init__``: safe only while it
    does nothing but set each field (no validator, converter, factory or hook)."""
    for cls in (
        AccessKey,
        ProductEnvironment,
        ProductEnvironmentAccessKey,
        ProductEnvironmentsResponse,
    ):
        assert not hasattr(cls, "__attrs_pre_init__") and not hasattr(cls, "__attrs_post_init__")
        assert "__dict__" not in dir(cls)  # slotted: every field is a slot
        for f in attrs.fields(cls):
            assert (f.validator, f.converter, f.init) == (None, None, True), f.name
            assert not isinstance(f.default, attrs.Factory), f.name  # type: ignore[arg-type]


def test_a_full_listing_is_built_inline_reading_every_field() -> None:
    """``_envs_listed`` (every field there, the live API's answers) reads each field of an
    environment and of its keys as the converter does, without the fallback: a field it
    forgot, or took from the wrong key, changes nothing here and fails."""
    for cls, into_key in ((ProductEnvironment, False), (ProductEnvironmentAccessKey, True)):
        base = {name: values[0] for name, values in FIELDS[cls].items()}
        for name, (_, other) in FIELDS[cls].items():
            changed = {**base, name: other, "unknown": {"nested": [1]}}
            env_of = (lambda k: {**ENV, "api_access_keys": [k]}) if into_key else (lambda e: e)
            before, after = env_of(base), env_of(changed)
            for env in (before, after):
                want = converter.structure({"sub_accounts": [env]}, ProductEnvironmentsResponse)
                assert _envs_listed([env]) == want.sub_accounts
            one, two = _envs_listed([before])[0], _envs_listed([after])[0]
            if into_key:
                one, two = one.api_access_keys[0], two.api_access_keys[0]  # type: ignore[assignment]
            differs = [
                f.name for f in attrs.fields(cls) if getattr(one, f.name) != getattr(two, f.name)
            ]
            assert differs == [name], (cls.__name__, name)


@pytest.mark.parametrize("left_out", [*ENV, "key", "secret", "enabled-of-key"])
def test_a_listing_missing_a_field_takes_the_per_field_builders(left_out: str) -> None:
    """Not the inline path (KeyError), and still what the converter gives: the builders
    supply the default, or the converter words the error of a required field."""
    key = {k: v for k, v in ENV_KEY.items() if left_out not in (k, f"{k}-of-key")}
    env = {k: v for k, v in {**ENV, "api_access_keys": [key]}.items() if k != left_out}
    with pytest.raises(KeyError):
        _envs_listed([env])
    _same({"sub_accounts": [env]}, ProductEnvironmentsResponse)
