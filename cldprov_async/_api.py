"""``client.access_keys``: the five operations plus what is built on them, in one class.

Rotation depends on the operations, not the other way round, so the class users reach is
assembled here, above both: the operations are inherited, and ``_rotation``'s functions
(whose first parameter is the operations object) become its methods as they are.

Imports: the access-key operations and rotation (``_rotation``, ``_bulk``); only the
client imports this.
"""

from __future__ import annotations

from . import _bulk, _rotation
from ._access_keys import AccessKeyOperations


class AccessKeysAPI(AccessKeyOperations):
    """List, generate, update and delete access keys; page through them; rotate them."""

    iter_keys = _rotation.iter_keys
    rotate = _rotation.rotate
    rotate_many = _bulk.rotate_many
    rotate_iter = _bulk.rotate_iter
