"""Shortcuts on the request path answer exactly what the general code answers."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from cldprov_async import RetryConfig
from cldprov_async._operation import call_options


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
