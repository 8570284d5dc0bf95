"""A fake Cloudinary Provisioning API (access keys, and the product-environment listing) for
tests and benchmarks.

It is a real HTTP server on 127.0.0.1 (aiohttp.web), so a client under test goes through its whole
stack (connection pool, middlewares, retries, parsing). It mimics the live API's quirks: HTTP Basic
auth, ``{"error": {"message": ...}}`` bodies, 420/429 rate limiting in fixed wall-clock windows with
``X-FeatureRateLimit-*`` headers, ``dedicated_for`` returned as a list, booleans accepted as the
strings ``"true"``/``"false"``. It can inject faults, at random (seeded) or scripted, and it keeps a
journal of what it received so tests can assert on the server side.

Each request goes through, in this order:

1. auth: a wrong or missing ``Authorization`` gets 401 and consumes no rate-limit budget;
2. rate limit: a rejected request (420 or 429) touches no state and consumes no budget; an
   accepted one consumes budget whatever its outcome;
3. faults: only requests the rate limiter accepted can be faulted;
4. the route: 404 (account, sub-account, key), 400 (validation), 409 (duplicate name), 200.

Choices where the spec says nothing:

- Each sub-account starts with ``keys_per_sub_account`` enabled keys named ``key-1``, ``key-2``...
  Its name and cloud name default to its id (``add_sub_account(id, name=, cloud_name=,
  enabled=)`` sets them); the listing (``GET .../sub_accounts``) returns sub-accounts in creation
  order, takes ``ids[]=`` or repeated ``ids=`` (then ignores the other filters), ``cloud_names``
  likewise, ``enabled`` and a case-insensitive name ``prefix``; more than 100 ids is a 400.
- ``generate`` without a name (or with ``""``) makes a key named ``""``; unnamed keys never conflict
  and cannot be deleted by name (``delete_by_name`` with an empty ``name`` is a 400).
- ``list``: sorting by ``created_at`` uses creation order (finer than the 1-second timestamps); ties
  on other fields keep creation order. Paging applies only when ``page`` or ``page_size`` is given;
  ``page`` defaults to 1 and ``page_size`` to ``DEFAULT_PAGE_SIZE``.
- JSON ``null`` for a field is a 400 (wrong type), like any other wrong type.
- Faults: ``"500"`` is a JSON error; ``"502"``/``"503"``/``"504"`` are HTML pages, as a proxy
  sends; ``"html"`` is a 500 with an HTML page (an app-server crash page where JSON is expected);
  none of them touches state. ``"drop_before"`` closes the connection without processing;
  ``"drop_after"`` commits the change, then closes it; neither sends a response (an aiohttp client
  raises ``ServerDisconnectedError``, but first resends GET/PUT/DELETE once by itself).
  ``"truncated"`` commits and sends the real response with its JSON body cut in half (valid HTTP,
  invalid JSON). ``"delay"`` sleeps ``Faults.delay`` (0.05 s without a policy), then answers.
- Every response carries the rate-limit headers when a policy is set, 401s and faults included.
- The Admin API's ping (``GET /v1_1/{cloud_name}/ping``, route ``"ping"``) accepts an enabled
  key of the environment with that cloud name (its secret as Basic auth), ``ping_delay``
  seconds after the key's creation, unless the environment is in ``ping_refused``; else 401
  ``Invalid api_key ...`` (``Invalid cloud_name ...`` for an unknown one).
- Random faults are reproducible for a given ``seed``: the n-th request of a route to a
  sub-account meets the same fault in every run, however concurrent requests interleave.

The package, one concern a module; each imports only modules above it in this list, and none
imports the client's modules at import time (only ``_server``, under TYPE_CHECKING and inside
``FakeProvisioningServer.client()``):

- ``_types``: the ``Route`` and ``FaultKind`` names;  ``_clock``: ``ManualClock``;
- ``_state``: the account's sub-accounts and keys, ``FakeKey`` snapshots;
- ``_journal``: ``JournalEntry``, ``ServerStats`` and the journal recording them;
- ``_faults``: the ``Faults`` policy and the fault plan (scripted, then seeded random);
- ``_policy``: ``RateLimitPolicy`` and the fixed-window limiter applying it;
- ``_routes``: routing, request parsing and what each route does to the state;
- ``_app``: the aiohttp handler: auth, rate limit, faults, route, journal, response bodies;
- ``_server``: ``FakeProvisioningServer``, wiring the above, and its lifecycle;
- ``_cli`` (and ``__main__``): ``python -m cldprov_async.testing``;
- ``_aioresponses``: apart from the server, the aiohttp 3.14 patch for aioresponses behind the
  plugin's ``cldprov_aioresponses`` fixture (imported by the fixture only).
"""

from ._cli import main
from ._clock import ManualClock
from ._faults import Faults
from ._journal import JournalEntry, ServerStats
from ._policy import RateLimitPolicy
from ._routes import DEFAULT_PAGE_SIZE
from ._server import FakeProvisioningServer
from ._state import FakeKey
from ._types import FAULT_KINDS, ROUTES, FaultKind, Route

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FAULT_KINDS",
    "ROUTES",
    "FakeKey",
    "FakeProvisioningServer",
    "FaultKind",
    "Faults",
    "JournalEntry",
    "ManualClock",
    "RateLimitPolicy",
    "Route",
    "ServerStats",
    "main",
]
