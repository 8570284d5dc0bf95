"""The aiohttp 3.14 patch for aioresponses: applied only inside the mock, gone once fixed."""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import core
from samples import ACCESS_KEYS

from cldprov_async import CldProvisioning, Security
from cldprov_async.testing import _aioresponses

KEYS = "https://api.cloudinary.com/v1_1/provisioning/accounts/acc/sub_accounts/env/access_keys"


def test_aioresponses_alone_still_fails_on_this_aiohttp() -> None:
    # The day this fails, upstream is fixed: the patch turns itself off (next test).
    assert _aioresponses.needs_patch()


async def test_the_patch_lives_only_inside_the_mock() -> None:
    original = vars(core)["ClientResponse"]
    assert original is aiohttp.ClientResponse
    with _aioresponses.mocked() as mock:
        assert vars(core)["ClientResponse"] is not original
        mock.get(KEYS, payload=ACCESS_KEYS)
        async with CldProvisioning("acc", Security("k", "s")) as client:
            listing = await client.access_keys.list({"sub_account_id": "env"})
        assert len(listing.access_keys) == 2
    assert vars(core)["ClientResponse"] is original


def test_no_patch_once_aioresponses_passes_stream_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    def fixed_build_response(self: object, *args: object, **kwargs: object) -> None:
        """A stand-in for an upstream release that passes stream_writer=... itself."""

    monkeypatch.setattr(core.RequestMatch, "_build_response", fixed_build_response)
    assert not _aioresponses.needs_patch()
    original = vars(core)["ClientResponse"]
    with _aioresponses.patched():
        assert vars(core)["ClientResponse"] is original
