"""cldprov-async: a lightweight asyncio client for Cloudinary's Account Provisioning API.

Start with ``CldProvisioning``; its ``access_keys`` attribute holds the operations.
This module only re-exports (``__all__``); it may import any module but the CLI and ``testing``.
"""

from . import errors, models
from ._api import AccessKeysAPI
from ._audit import AuditReport, AuditRow, AuditSummary
from ._client import CldProvisioning
from ._config import RetryConfig, Security
from ._gate import RateLimitStats
from ._keycache import CachedKey, CacheEntry, KeyCache
from ._product_environments import ProductEnvironmentOperations
from ._rotation import RotationPlan, RotationResult
from ._snapshot import RateLimit
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CldProvisioningError,
    ConflictError,
    ErrorResponse,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
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
    "ConflictError",
    "DedicatedFor",
    "ErrorResponse",
    "GetAccessKeysRequest",
    "KeyCache",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
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
    "RotationPlan",
    "RotationResult",
    "Security",
    "SortBy",
    "SortOrder",
    "SuccessResponse",
    "TransportError",
    "VerificationError",
    "__version__",
    "errors",
    "models",
]
