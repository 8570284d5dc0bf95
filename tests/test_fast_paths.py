"""Shortcuts on the request path answer exactly what the general code answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from cldprov_async import GetAccessKeysRequest, RetryConfig, SortBy, SortOrder
from cldprov_async._access_keys import AccessKeyOperations
from cldprov_async._middleware import GarbledBodyError, _decode
from cldprov_async._operation import call_options, segment
from cldprov_async._product_environments import _ENABLED_ONLY, listing_query
from cldprov_async._snapshot import parse_budget


def _quoted(value: str) -> str:
    """``segment`` without its shortcut for plain ids."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded.strip(".") == "" else encoded


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "...", "a.", ".a", "a..b", "abc-_~09", "ab\n", "a/b", "a?b", "é", "١٢", "a b"],
)
def test_segment_plain_and_quoted_agree(value: str) -> None:
    assert segment(value) == _quoted(value)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ09_.~-/?%# é\n\x00"), max_size=8) | st.text(max_size=8))
def test_segment_agrees_on_generated_text(value: str) -> None:
    assert segment(value) == _quoted(value)


def test_default_call_options_are_shared_and_read_only() -> None:
    opts = call_options(None, None, None)
    assert opts is call_options(None, None, None, "normal")
    assert isinstance(opts, MappingProxyType)
    assert dict(opts) == {
        "retries": None,
        "timeout_ms": None,
        "http_headers": None,
        "priority": "normal",
    }
    with pytest.raises(TypeError):
        opts["retries"] = RetryConfig()  # type: ignore[index]
    set_ = call_options(None, 5.0, None, "bulk")
    assert dict(set_) == {
        "retries": None,
        "timeout_ms": 5.0,
        "http_headers": None,
        "priority": "bulk",
    }
    with pytest.raises(ValueError, match="priority"):
        call_options(None, None, None, "urgent")  # type: ignore[arg-type]


def _operations() -> AccessKeyOperations:
    return AccessKeyOperations(SimpleNamespace(call=None), "acc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "request_",
    [
        {"sub_account_id": "env"},
        {"sub_account_id": "env", "sort_by": "created_at"},
        {"sub_account_id": "env", "sort_by": SortBy.NAME, "sort_order": "asc"},
        {"sub_account_id": "env", "page": 2, "page_size": 10},
        {"sub_account_id": "env", "sort_order": SortOrder.DESC, "page": 1},
    ],
)
def test_lists_query_kept_or_not_is_what_the_model_gives(request_: dict[str, object]) -> None:
    ops = _operations()
    req = GetAccessKeysRequest(**request_)  # type: ignore[arg-type]
    fields: tuple[tuple[str, object], ...] = (("page_size", req.page_size), ("page", req.page))
    fields += (("sort_by", req.sort_by), ("sort_order", req.sort_order))
    want = (req.sub_account_id, tuple((k, str(v)) for k, v in fields if v is not None))
    assert ops._list_query(request_) == want  # built through the model
    assert ops._list_query(dict(request_)) == want  # kept, if all its values were text
    assert ops._list_query(req) == want
    kept = all(type(v) is str for v in request_.values())  # an enum member: not kept
    assert (tuple(request_.items()) in ops._queries) == kept


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"sub_account_id": "env", "sort_by": "size"}, ValueError),
        ({"sub_account_id": 5}, TypeError),
        ({"sub_account_id": "env", "page": True}, TypeError),
        ({"sub_account_id": "env", "page": [1]}, TypeError),
        ({"sub_account_id": "env", "other": "x"}, TypeError),
    ],
)
def test_a_bad_list_request_fails_every_time(bad: dict[str, object], error: type) -> None:
    ops = _operations()
    ops._list_query({"sub_account_id": "env", "page": 1})
    for _ in range(2):
        with pytest.raises(error):
            ops._list_query(bad)
    assert len(ops._queries) == 0  # neither the int page nor a bad request was kept


def _loads_or_garbled(body: bytes) -> object:
    """What the middleware decoded before its UTF-8 shortcut: ``json.loads`` of the bytes."""
    try:
        return ("ok", json.loads(body))
    except (ValueError, RecursionError):
        return ("garbled", body.decode("utf-8", "replace"))


def _decoded(body: bytes) -> object:
    try:
        return ("ok", _decode(body, 200))
    except GarbledBodyError as exc:
        assert exc.status == 200
        return ("garbled", exc.text)


DOC = {"sub_accounts": [{"id": "é1", "name": "naïve ☃", "n": [1, 2.5, None, True]}]}


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(DOC).encode(),
        json.dumps(DOC, ensure_ascii=False).encode(),
        b"\xef\xbb\xbf" + json.dumps(DOC).encode(),  # a UTF-8 BOM
        *(json.dumps(DOC, ensure_ascii=False).encode(e) for e in ("utf-16", "utf-16-le")),
        *(json.dumps(DOC, ensure_ascii=False).encode(e) for e in ("utf-16-be", "utf-32")),
        json.dumps(DOC, ensure_ascii=False).encode("utf-32-le"),
        b"",
        b"  ",
        b"{",
        b'{"a": 1} x',
        b"\xff\xfe",
        b'"\xff"',
        b"\x00{}",
        b"[" * 100_000,
        b'"\\ud800"',
    ],
)
def test_the_utf8_shortcut_decodes_every_body_as_json_loads_does(body: bytes) -> None:
    assert _decoded(body) == _loads_or_garbled(body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    JSON_VALUES,
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]),
    st.booleans(),
)
def test_generated_bodies_decode_as_json_loads_does(
    value: object, encoding: str, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode(encoding, "surrogatepass")
    assert _decoded(body) == _loads_or_garbled(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=12) | st.text(max_size=8).map(lambda t: t.encode("utf-8", "replace")))
def test_generated_bytes_decode_as_json_loads_does(body: bytes) -> None:
    assert _decoded(body) == _loads_or_garbled(body)


@pytest.mark.parametrize("enabled", [None, True, False])
def test_the_kept_listing_queries_are_what_listing_query_gives(enabled: bool | None) -> None:
    assert _ENABLED_ONLY[enabled] == tuple(listing_query(enabled, None, None, None))


@pytest.mark.parametrize(
    "headers",
    [
        {"X-FeatureRateLimit-Limit": "500", "X-FeatureRateLimit-Remaining": "7"},
        {"x-featureratelimit-limit": "500", "x-featureratelimit-remaining": "6"},
        {"X-FeatureRateLimit-Limit": " 500 ", "X-FeatureRateLimit-Remaining": "x"},
        {"X-FeatureRateLimit-Limit": "-1", "X-FeatureRateLimit-Remaining": "5"},
        {"X-FeatureRateLimit-Limit": "500", "X-FeatureRateLimit-Remaining": "-5"},
        {"X-FeatureRateLimit-Remaining": "5"},
        {"X-FeatureRateLimit-Limit": "abc"},
        {"X-FeatureRateLimit-Reset": "Tue, 18 Aug 2026 17:00:00 GMT"},
        {"X-FeatureRateLimit-Reset": "Tue, 18 Aug 2026 17:00:00"},
        {"X-FeatureRateLimit-Reset": "not a date", "X-FeatureRateLimit-Limit": "500"},
        {"X-FeatureRateLimit-Reset": ""},
        {},
    ],
)
def test_budget_headers_parse_the_same_seen_or_not(headers: dict[str, str]) -> None:
    """The limit and reset kept by their text: a first answer, a repeated one and a mapping
    of either case give what parsing each header alone gives."""
    proxy = CIMultiDictProxy(CIMultiDict(headers))
    fresh = _unkept(proxy)
    for mapping in (proxy, proxy, headers if all(k[0] == "X" for k in headers) else proxy):
        assert parse_budget(mapping) == fresh


def _unkept(headers: CIMultiDictProxy[str]) -> object:
    """``parse_budget`` as written before the limits and dates were kept."""
    from email.utils import parsedate_to_datetime

    def number(raw: str | None) -> int | None:
        try:
            value = int(raw.strip()) if raw is not None else None
        except ValueError:
            return None
        return value if value is not None and value >= 0 else None

    def date(raw: str | None) -> datetime | None:
        try:
            parsed = parsedate_to_datetime(raw) if raw else None
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)

    said = (
        number(headers.get("X-FeatureRateLimit-Limit")),
        number(headers.get("X-FeatureRateLimit-Remaining")),
        date(headers.get("X-FeatureRateLimit-Reset")),
    )
    return None if said == (None, None, None) else said
