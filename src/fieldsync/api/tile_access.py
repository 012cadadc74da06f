"""Who may fetch a COG's tiles or a survey's map: a caller's token, or a signed link.

A signed link covers a path prefix (`/tiles/<cog>` or `/map/<survey>`), not one URL, so one
signature serves every tile of a COG. A caller that may not read the object is answered
exactly as if it did not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request

from fieldsync.access import organization_access
from fieldsync.api.context import RequestContext
from fieldsync.blobs.signing import EXPIRES, SIGNATURE, LinkSignatureError, LinkSigner
from fieldsync.ids import TypeCode
from fieldsync.sync.scopes import Located, locate_many, readable_object
from fieldsync.tokens import authenticate

TOKEN_MAX_AGE = 60
"""Seconds a browser may keep a tile fetched with a token (access may be revoked)."""


class Refused(Exception):
    """An answer other than the content: status, message and error code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def not_found(what: str, sentera_id: str) -> Refused:
    return Refused(404, f"{what} {sentera_id!r} not found", "NOT_FOUND")


@dataclass(frozen=True, slots=True)
class Grant:
    """How a request was authorized: by token, or by a link signed until `expires_at`."""

    token: str | None
    expires_at: int | None

    @property
    def signed(self) -> bool:
        return self.expires_at is not None

    def cache_control(self) -> str:
        if self.expires_at is None:
            return f"private, max-age={TOKEN_MAX_AGE}"
        return f"private, max-age={max(0, self.expires_at - int(time.time()))}"


def scope_path(prefix: str, sentera_id: str) -> str:
    """The path a link signature covers: `/tiles/<cog>` or `/map/<survey>`."""
    return f"/{prefix}/{sentera_id}"


def grant_of(request: Request, signer: LinkSigner, signed_scope: str) -> Grant:
    """The request's token or verified link signature; 401/403 when it has neither."""
    query = request.query_params
    if SIGNATURE in query:
        params = {EXPIRES: query.get(EXPIRES, ""), SIGNATURE: query[SIGNATURE]}
        try:
            signer.verify(signed_scope, params)
        except LinkSignatureError as exc:
            raise Refused(403, str(exc), exc.code) from None
        return Grant(None, int(params[EXPIRES]))
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(
            401,
            "send 'Authorization: Bearer <token>' or use a signed link (Survey.map_url)",
            "UNAUTHENTICATED",
        )
    return Grant(token.strip(), None)


def located(conn: Connection, grant: Grant, code: TypeCode, sentera_id: str) -> Located | None:
    """The live object if the grant may read it: a signed link names it, a token's user must
    read its organization. None both when missing and when not readable."""
    if grant.token is None:
        return locate_many(conn, code, [sentera_id]).get(sentera_id)
    viewer = authenticate(conn, grant.token)
    if viewer is None:
        raise Refused(401, "the token is invalid, expired or revoked", "UNAUTHENTICATED")
    readable = organization_access(conn, viewer.user_id).readable
    return readable_object(conn, readable, code, sentera_id)


def signed_query(signer: LinkSigner, scope: str, grant: Grant, seconds: int) -> str:
    """`expires=…&signature=…` for `scope`, ending when the grant's own link ends (or in
    `seconds` for a token)."""
    expires_at = grant.expires_at or int(time.time()) + seconds
    return signer.sign(scope, {}, expires_at).split("?", 1)[1]


def map_link(signer: LinkSigner, base_url: str, survey_sentera_id: str, seconds: int) -> str:
    """An absolute signed link to the survey's map page, valid `seconds`."""
    path = scope_path("map", survey_sentera_id)
    return base_url.rstrip("/") + signer.sign_for(path, {}, seconds)


def resolve_map_url(source: dict[str, Any], info: Any) -> str | None:
    """Survey.map_url: a signed link to the survey's map, valid 60 minutes; null when this
    server stores no bytes."""
    context: RequestContext = info.context
    if context.blobs is None:
        return None
    blobs = context.blobs
    base = blobs.base_url(context.base_url)
    return map_link(blobs.signer, base, source["sentera_id"], blobs.settings.link_seconds)
