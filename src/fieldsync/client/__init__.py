"""The FieldSync client: a typed SDK (`FieldSyncClient`), the sync loop, and the local mirror
that `fieldsync pull` keeps. It talks HTTP only; nothing here imports the server."""

from fieldsync.client.errors import (
    AuthenticationError,
    ClientError,
    GraphQLQueryError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    ServerBusyError,
    ServerUnreachableError,
)
from fieldsync.client.queries import KINDS, Kind
from fieldsync.client.sdk import FieldSyncClient, ItemFailure, Owner, WriteResult
from fieldsync.client.sync import Deleted, ScopeTotals, SyncFailure, SyncPage
from fieldsync.client.transport import Retrying, RetryPolicy, Transport

__all__ = [
    "KINDS",
    "AuthenticationError",
    "ClientError",
    "Deleted",
    "FieldSyncClient",
    "GraphQLQueryError",
    "InvalidRequestError",
    "ItemFailure",
    "Kind",
    "NotFoundError",
    "Owner",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Retrying",
    "ScopeTotals",
    "ServerBusyError",
    "ServerUnreachableError",
    "SyncFailure",
    "SyncPage",
    "Transport",
    "WriteResult",
]
