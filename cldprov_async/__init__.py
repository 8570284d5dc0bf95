"""cldprov-async: a lightweight asyncio client for Cloudinary's Account Provisioning API.

Start with ``CldProvisioning``; its ``access_keys`` attribute holds the operations.
This module only re-exports (``__all__``); it may import any module but the CLI and ``testing``.
"""

from . import errors, models
from ._api import AccessKeysAPI
from ._audit import AuditReport, AuditRow, AuditSummary
from ._client import CldProvisioning
from ._clock import Clock, SystemClock
from ._config import RetryConfig, Security
from ._gate import RateLimitStats
from ._hook import ShellHook
from ._keycache import CachedKey, CacheEntry, KeyCache
from ._lifecycle import Decision, Facts, LifecyclePolicy, decide
from ._lock import RotationLock
from ._product_environments import ProductEnvironmentOperations
from ._rotation import RotationPlan, RotationResult
from ._snapshot import RateLimit
from ._verify import PingVerifier
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CldProvisioningError,
    ConflictError,
    ErrorResponse,
    HandOffError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
    RotationLockedError,
    RotationLockError,
    TransportError,
    VerificationError,
)
from .models import (
    AccessKey,
    AccessKeyRequest,
    AccessKeysResponse,
    AccessKeyUpdateRequest,
    DedicatedFor,
    GetAccessKeysRequest,
    ProductEnvironment,
    ProductEnvironmentAccessKey,
    ProductEnvironmentsResponse,
    SortBy,
    SortOrder,
    SuccessResponse,
)

__all__ = [
    "APIError",
    "AccessKey",
    "AccessKeyRequest",
    "AccessKeyUpdateRequest",
    "AccessKeysAPI",
    "AccessKeysResponse",
    "AuditReport",
    "AuditRow",
    "AuditSummary",
    "AuthenticationError",
    "BadRequestError",
    "CacheEntry",
    "CachedKey",
    "CldProvisioning",
    "CldProvisioningError",
    "Clock",
    "ConflictError",
    "Decision",
    "DedicatedFor",
    "ErrorResponse",
    "Facts",
    "GetAccessKeysRequest",
    "HandOffError",
    "KeyCache",
    "LifecyclePolicy",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PingVerifier",
    "ProductEnvironment",
    "ProductEnvironmentAccessKey",
    "ProductEnvironmentOperations",
    "ProductEnvironmentsResponse",
    "RateLimit",
    "RateLimitStats",
    "RateLimitedError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryConfig",
    "RotationLock",
    "RotationLockError",
    "RotationLockedError",
    "RotationPlan",
    "RotationResult",
    "Security",
    "ShellHook",
    "SortBy",
    "SortOrder",
    "SuccessResponse",
    "SystemClock",
    "TransportError",
    "VerificationError",
    "__version__",
    "decide",
    "errors",
    "models",
]
