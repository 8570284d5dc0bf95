"""``client.access_keys``: the five operations plus what is built on them, in one class.

Rotation depends on the operations, not the other way round, so the class users reach is
assembled here, above both: the operations are inherited, and ``_rotation``'s functions
(whose first parameter is the operations object) become its methods as they are.

Imports: the access-key operations, the listing, rotation (``_rotation``, ``_bulk``), the
audit, the clock and the key cache's type; only the client imports this.
"""

from __future__ import annotations

from . import _audit, _bulk, _rotation
from ._access_keys import AccessKeyOperations
from ._clock import SYSTEM_CLOCK, Clock
from ._keycache import KeyCache
from ._product_environments import ProductEnvironmentOperations
from ._session import Session


class AccessKeysAPI(AccessKeyOperations):
    """List, generate, update and delete access keys; page through them; rotate and audit them.

    Built by the client (``client.access_keys``); not constructed directly.

    Args:
        session: The client's session: its one request path, gate and retries.
        account_id: The account whose keys these are.
        environments: The product-environment listing (the client's
            ``product_environments``); a new one on ``session`` when None.
        key_cache: The client's key cache; None for none.
        clock: The client's clock.

    Attributes:
        environments: Gives rotations the cloud names the ping and deploy hooks need, and
            audits and age-filtered rotations the listing the key cache is checked against.
        key_cache: What audits and age-filtered rotations read keys from when the listing
            shows no change, and what every rotation writes into (None: no cache).
        clock: The time their decisions are taken at (a ``ManualClock`` in tests).
    """

    def __init__(
        self,
        session: Session,
        account_id: str,
        *,
        environments: ProductEnvironmentOperations | None = None,
        key_cache: KeyCache | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session, account_id)
        self.environments = environments or ProductEnvironmentOperations(session, account_id)
        self.key_cache = key_cache
        self.clock = clock

    audit = _audit.audit
    iter_keys = _rotation.iter_keys
    rotate = _rotation.rotate
    rotate_many = _bulk.rotate_many
    rotate_iter = _bulk.rotate_iter
