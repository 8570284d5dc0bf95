"""Shortcuts on the request path answer exactly what the general code answers."""

from __future__ import annotations

import json
from types import MappingProxyType, SimpleNamespace
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cldprov_async import GetAccessKeysRequest, RetryConfig, SortBy, SortOrder
from cldprov_async._access_keys import AccessKeyOperations
from cldprov_async._middleware import GarbledBodyError, _decode
from cldprov_async._operation import call_options, segment


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
