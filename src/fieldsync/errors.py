"""Errors a client or operator can act on, each with a stable machine-readable code."""

from __future__ import annotations


class FieldSyncError(Exception):
    """An expected failure: its message is safe to show to the caller."""

    code = "BAD_REQUEST"


class NotFoundError(FieldSyncError):
    """The object does not exist, or the caller may not read it (the two look the same)."""

    code = "NOT_FOUND"


class UnauthenticatedError(FieldSyncError):
    code = "UNAUTHENTICATED"


class InvalidArgumentError(FieldSyncError):
    code = "BAD_USER_INPUT"


class ForbiddenError(FieldSyncError):
    """The caller may read the object but its role there does not allow the change."""

    code = "FORBIDDEN"


class NoBlobStoreError(FieldSyncError):
    """File bytes were asked of an executor run without a blob store."""

    code = "UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("this server stores no file bytes")


class TooManyItemsError(FieldSyncError):
    """A write names more items than one call may; nothing was written."""

    code = "TOO_MANY_ITEMS"
