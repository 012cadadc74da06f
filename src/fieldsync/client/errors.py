"""What can go wrong talking to a FieldSync server, as exceptions whose message says what to do.

Every exception a client call raises on purpose is a `ClientError`; `code` is the server's
`extensions.code` when the server gave one.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A failure the caller can act on; the message is meant for a person."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ServerUnreachableError(ClientError):
    """No answer from the server (refused, reset, timed out), even after retrying."""


class AuthenticationError(ClientError):
    """The server refused the token (HTTP 401)."""


class PermissionDeniedError(ClientError):
    """The token may read the object but not change it (FORBIDDEN)."""


class NotFoundError(ClientError):
    """The object does not exist, or the token may not read it (NOT_FOUND)."""


class RateLimitedError(ClientError):
    """The server kept answering 429 after every retry."""


class ServerBusyError(ClientError):
    """The server kept answering 5xx after every retry."""


class InvalidRequestError(ClientError):
    """The server refused the request as malformed (4xx, validation, bad input)."""


class GraphQLQueryError(ClientError):
    """The server ran the request but a field failed; `errors` holds what it said."""

    def __init__(self, message: str, code: str | None, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, code, 200)
        self.errors = errors


class DiskFullError(ClientError):
    """The disk holding the mirror is full."""

    def __init__(self, directory: object) -> None:
        super().__init__(
            f"the disk holding {directory} is full: free some space and run the same command "
            "again (it resumes where it stopped)"
        )


class ProtocolError(ClientError):
    """The server answered something that is not a FieldSync answer (not JSON, wrong shape)."""


_BY_CODE: dict[str, type[ClientError]] = {
    "UNAUTHENTICATED": AuthenticationError,
    "FORBIDDEN": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RATE_LIMITED": RateLimitedError,
}


def error_for(message: str, code: str | None, status: int) -> ClientError:
    """The exception for a server error answer, with advice added where it helps."""
    kind = _BY_CODE.get(code or "")
    if status == 401 or kind is AuthenticationError:
        return AuthenticationError(
            f"the server refused the token ({message}): check --token or FIELDSYNC_TOKEN",
            code,
            status,
        )
    if kind is not None:
        return kind(message, code, status)
    if status == 429:
        return RateLimitedError(f"{message} (still rate limited after retrying)", code, status)
    if status >= 500:
        return ServerBusyError(
            f"the server answered HTTP {status}: {message}; try again later", code, status
        )
    return InvalidRequestError(message, code, status)


def graphql_error(errors: list[dict[str, Any]]) -> ClientError:
    """The exception for the `errors` of an HTTP 200 answer (the first error decides)."""
    first = errors[0] if errors else {}
    message = str(first.get("message", "unknown error"))
    extensions = first.get("extensions") or {}
    code = extensions.get("code") if isinstance(extensions, dict) else None
    kind = _BY_CODE.get(code or "")
    if kind is not None:
        return kind(message, code, 200)
    return GraphQLQueryError(message, code, errors)
