"""Checking and normalizing one value of a changeset record against its attribute."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String

from fieldsync.ids import type_code_of
from fieldsync.model.enums import AREA_UNIT, ROLES
from fieldsync.model.kinds import Attribute, EntityKind, ValueType


class InvalidValue(ValueError):
    """A value that does not fit its attribute; the message is shown after the JSON path.

    `subpath` points inside the value (`[2]` of a list, `.unit` of an area) when the fault is
    there, so the reported JSON path names the exact value at fault. `key` names the rule that
    was broken (snake_case, e.g. `less_than_or_equal_to`) and `details` the values that vary,
    as the upsert mutations report them.
    """

    def __init__(
        self,
        message: str,
        subpath: str = "",
        *,
        key: str = "invalid",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.subpath = subpath
        self.key = key
        self.details = details


def describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value)


def parse_timestamp(value: Any) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime in whole seconds (naive means UTC)."""
    if not isinstance(value, str):
        raise InvalidValue(f"expected an ISO-8601 timestamp, got {describe(value)}")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).replace(microsecond=0)
    except (ValueError, OverflowError):
        raise InvalidValue(
            f"{describe(value)} is not an ISO-8601 timestamp (e.g. 2024-06-01T14:00:00Z)"
        ) from None


def check_sentera_id(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected a sentera_id string, got {describe(value)}")
    code = type_code_of(value)
    if code is None:
        raise InvalidValue(f"{describe(value)} is not a well-formed sentera_id")
    if allowed and code.value not in allowed:
        raise InvalidValue(
            f"{describe(value)} has type code {code.value}; expected {' or '.join(allowed)}"
        )
    return value


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _number(value: Any, kind: EntityKind, attribute: Attribute, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(
            f"expected {'an integer' if integer else 'a number'}, got {describe(value)}"
        )
    if integer and not isinstance(value, int):
        raise InvalidValue(f"expected an integer, got {describe(value)}")
    if not integer and not _finite(value):
        raise InvalidValue(f"expected a finite number, got {describe(value)}")
    if attribute.minimum is not None and value < attribute.minimum:
        raise InvalidValue(
            f"must be greater than or equal to {attribute.minimum:g}",
            key="greater_than_or_equal_to",
            details={"count": _bound(attribute.minimum), "value": value},
        )
    if attribute.maximum is not None and value > attribute.maximum:
        raise InvalidValue(
            f"must be less than or equal to {attribute.maximum:g}",
            key="less_than_or_equal_to",
            details={"count": _bound(attribute.maximum), "value": value},
        )
    if integer:
        # The largest value the column holds on every backend.
        column_type = kind.table.c[attribute.target].type
        limit = 2**63 - 1 if isinstance(column_type, BigInteger) else 2**31 - 1
        if isinstance(column_type, Integer) and not -limit - 1 <= value <= limit:
            raise InvalidValue(
                f"{value} is out of range (at most {limit})",
                key="less_than_or_equal_to",
                details={"count": limit, "value": value},
            )
    return value


def _memberships(value: Any, allowed: tuple[str, ...]) -> list[dict[str, str]]:
    """`[{organization_sentera_id, role}]`, one entry per organization."""
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list of memberships, got {describe(value)}")
    roles: dict[str, str] = {}
    for position, entry in enumerate(value):
        at = f"[{position}]"
        if not isinstance(entry, dict):
            raise InvalidValue(
                f"expected an object {{organization_sentera_id, role}}, got {describe(entry)}", at
            )
        extra = sorted(set(entry) - {"organization_sentera_id", "role"})
        if extra:
            raise InvalidValue(
                f"unknown key {extra[0]!r} (a membership has organization_sentera_id and role)",
                at,
            )
        try:
            organization = check_sentera_id(entry.get("organization_sentera_id"), allowed)
        except InvalidValue as exc:
            raise InvalidValue(str(exc), f"{at}.organization_sentera_id") from None
        role = entry.get("role")
        if role not in ROLES:
            raise InvalidValue(
                f"{describe(role)} is not one of {', '.join(ROLES)}",
                f"{at}.role",
                key="inclusion",
                details={"value": role, "choices": list(ROLES)},
            )
        if roles.get(organization, role) != role:
            raise InvalidValue(f"{organization!r} is given twice with different roles", at)
        roles[organization] = role
    return [{"organization_sentera_id": org, "role": role} for org, role in roles.items()]


def _bound(limit: float) -> int | float:
    return int(limit) if float(limit).is_integer() else limit


def check_value(kind: EntityKind, attribute: Attribute, value: Any) -> Any:
    """The normalized value, or InvalidValue. References stay sentera_ids here."""
    if value is None:
        if not attribute.nullable:
            raise InvalidValue("may not be null", key="blank")
        return None
    vt = attribute.value_type
    if vt is ValueType.TEXT:
        if not isinstance(value, str):
            raise InvalidValue(f"expected a string, got {describe(value)}")
        if "\x00" in value:
            # PostgreSQL cannot store it; SQLite could, so reject it everywhere.
            raise InvalidValue("may not contain a NUL character (\\u0000)")
        column = kind.table.c.get(attribute.target)
        length = getattr(column.type, "length", None) if column is not None else None
        if (
            isinstance(column.type if column is not None else None, String)
            and length
            and len(value) > length
        ):
            raise InvalidValue(
                f"is longer than {length} characters", key="too_long", details={"count": length}
            )
        return value
    if vt is ValueType.FLOAT:
        return float(_number(value, kind, attribute, integer=False))
    if vt is ValueType.INT:
        return int(_number(value, kind, attribute, integer=True))
    if vt is ValueType.BOOL:
        if not isinstance(value, bool):
            raise InvalidValue(f"expected true or false, got {describe(value)}")
        return value
    if vt is ValueType.DATETIME:
        return parse_timestamp(value)
    if vt is ValueType.ENUM:
        if not isinstance(value, str) or value not in attribute.choices:
            raise InvalidValue(
                f"{describe(value)} is not one of {', '.join(attribute.choices)}",
                key="inclusion",
                details={"value": value, "choices": list(attribute.choices)},
            )
        return value
    if vt is ValueType.REF:
        return check_sentera_id(value, tuple(code.value for code in attribute.refs))
    if vt is ValueType.REF_LIST:
        if not isinstance(value, list):
            raise InvalidValue(f"expected a list of sentera_ids, got {describe(value)}")
        allowed = tuple(code.value for code in attribute.refs)
        checked: list[str] = []
        for position, item in enumerate(value):
            try:
                checked.append(check_sentera_id(item, allowed))
            except InvalidValue as exc:
                raise InvalidValue(str(exc), f"[{position}]") from None
        return list(dict.fromkeys(checked))
    if vt is ValueType.MEMBERSHIPS:
        return _memberships(value, tuple(code.value for code in attribute.refs))
    if vt is ValueType.AREA:
        if not isinstance(value, dict):
            raise InvalidValue(f"expected an object {{value, unit}} or null, got {describe(value)}")
        extra = sorted(set(value) - {"value", "unit"})
        if extra:
            raise InvalidValue(f"unknown key {extra[0]!r} (an area has value and unit)")
        if "value" not in value or "unit" not in value:
            raise InvalidValue("an area needs both value and unit")
        number = value["value"]
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not _finite(number)
            or number < 0
        ):
            raise InvalidValue(
                f"area value must be a number of at least 0, got {describe(number)}", ".value"
            )
        if not isinstance(value["unit"], str) or value["unit"] not in AREA_UNIT:
            raise InvalidValue(
                f"{describe(value['unit'])} is not one of {', '.join(AREA_UNIT)}", ".unit"
            )
        return {"value": float(number), "unit": value["unit"]}
    raise AssertionError(vt)  # pragma: no cover
