"""Shortcuts on the request path answer exactly what the general code answers."""

from __future__ import annotations

from types import MappingProxyType
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cldprov_async import RetryConfig
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
