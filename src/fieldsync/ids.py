"""`sentera_id`s: generation, shape checks and type codes.

The observed shape is
``<7 random [a-z0-9]>_<type code>_<org key>_<source>_<env>_<build hex>_<YYMMDD>_<HHMMSS>``.
Clients treat ids as opaque; the server reads the type code to know which table an id names.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from enum import StrEnum

from fieldsync import __version__


class TypeCode(StrEnum):
    ORGANIZATION = "OR"
    USER = "US"
    FIELD = "AS"
    SURVEY = "CO"
    IMAGE = "IM"
    MOSAIC = "MO"
    COG = "CG"
    FILE = "FI"
    FEATURE_SET = "FS"
    LOGO = "LO"
    FLIGHT_TASK = "TA"


# `\Z`, not `$`: `$` also matches before a trailing newline. ASCII digits only.
SENTERA_ID_RE = re.compile(
    r"\A[a-z0-9]{7}_(?P<code>[A-Z]{2})_[A-Za-z0-9]+_[A-Za-z0-9]+_[A-Za-z0-9]+_[0-9a-f]+"
    r"_[0-9]{6}_[0-9]{6}\Z"
)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_BUILD = "f5" + __version__.replace(".", "")[:7].ljust(7, "0")


def type_code_of(sentera_id: str) -> TypeCode | None:
    """The type code of a well-formed id, or None when the id is malformed or the code unknown."""
    match = SENTERA_ID_RE.fullmatch(sentera_id)
    if match is None:
        return None
    try:
        return TypeCode(match.group("code"))
    except ValueError:
        return None


def new_sentera_id(code: TypeCode, org_key: str = "FSync", env: str = "prod") -> str:
    """A fresh id of the documented shape; the random part makes collisions negligible."""
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(7))
    stamp = datetime.now(UTC).strftime("%y%m%d_%H%M%S")
    clean_key = re.sub(r"[^A-Za-z0-9]", "", org_key) or "FSync"
    return f"{random_part}_{code.value}_{clean_key}_FS_{env}_{_BUILD}_{stamp}"
