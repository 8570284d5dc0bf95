"""Shared test data: the spec's example bodies and the identities the unit tests use."""

from __future__ import annotations

import aiohttp

from cldprov_async import RetryConfig

KEY, SECRET = "prov-key-123", "PROVISIONING-SECRET-42"
ACCOUNT, SUB, API_KEY = "acc-9", "sub-7", "814814814814814"
AUTH = aiohttp.encode_basic_auth(KEY, SECRET)
KEYS_PATH = f"/v1_1/provisioning/accounts/{ACCOUNT}/sub_accounts/{SUB}/access_keys"
ONCE = RetryConfig(max_attempts=1)

# The spec's examples (components/examples MainAccessKey, AccessKeys; SuccessResponse).
KEY_SECRET = "QcsQcsQcsQcsQcsQcsQcsQcsQcs"
MAIN_KEY = {
    "name": "main_key",
    "api_key": API_KEY,
    "api_secret": KEY_SECRET,
    "created_at": "2022-03-15T11:44:48Z",
    "updated_at": "2023-08-10T09:23:45Z",
    "enabled": True,
}
ACCESS_KEYS = {
    "access_keys": [
        MAIN_KEY,
        {
            "name": "secondary_key",
            "api_key": "418418418418418",
            "api_secret": "scQscQscQscQscQscQscQscQscQ",
            "created_at": "2023-09-10T09:23:45Z",
            "updated_at": "2023-09-10T09:45:57Z",
            "enabled": False,
        },
    ],
    "total": 2,
}
OK = {"message": "ok"}
