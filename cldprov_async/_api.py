"""``client.access_keys``: the five operations plus what is built on them, in one class.

Rotation depends on the operations, not the other way round, so the class users reach is
assembled here, above both: the operations are inherited, and ``_rotation``'s functions
(whose first parameter is the operations object) become its methods as they are.

Imports: the access-key operations, the listing and rotation (``_rotation``, ``_bulk``), the
clock; only the client imports this.
"""

from __future__ import annotations

from . import _bulk, _rotation
from ._access_keys import AccessKeyOperations
from ._clock import SYSTEM_CLOCK, Clock
from ._product_environments import ProductEnvironmentOperations
from ._session import Session


class AccessKeysAPI(AccessKeyOperations):
    """List, generate, update and delete access keys; page through them; rotate them.

    ``environments`` (the client's ``product_environments``) gives rotations the cloud names
    the ping and deploy hooks need; ``clock`` is the client's clock, for their decisions.
    """

    def __init__(
        self,
        session: Session,
        account_id: str,
        *,
        environments: ProductEnvironmentOperations | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session, account_id)
        self.environments = environments
        self.clock = clock

    iter_keys = _rotation.iter_keys
    rotate = _rotation.rotate
    rotate_many = _bulk.rotate_many
    rotate_iter = _bulk.rotate_iter
