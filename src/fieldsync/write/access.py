"""What one API caller may write: the planner asks this for every existing item a write names.

An item the caller may not read is answered exactly as one that does not exist; one it may read
but not write (its role there is `viewer`) is `forbidden`. Changesets (`fieldsync load`) are an
operator's tool and plan without a `WriteAccess`: they may write anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from fieldsync.ids import TypeCode, type_code_of
from fieldsync.sync.scopes import locate_many


@dataclass
class WriteAccess:
    conn: Connection
    user_id: int
    user_sentera_id: str
    readable: set[int]
    """Organizations the caller reads (any role), with their descendants."""
    writable: set[int]
    """Organizations the caller writes (editor or admin), with their descendants."""
    administered: set[int] = field(default_factory=set)
    """Organizations whose members the caller manages (admin), with their descendants."""
    _organizations: dict[str, int | None] = field(default_factory=dict)

    def prime(self, sentera_ids: Iterable[str]) -> None:
        """Look up the organizations of many items at once (one query per type)."""
        by_code: dict[TypeCode, set[str]] = defaultdict(set)
        for sentera_id in sentera_ids:
            code = type_code_of(sentera_id)
            if code is not None and sentera_id not in self._organizations:
                by_code[code].add(sentera_id)
        for code, wanted in by_code.items():
            located = locate_many(self.conn, code, wanted)
            for sentera_id in wanted:
                found = located.get(sentera_id)
                self._organizations[sentera_id] = None if found is None else found.organization_id

    def _organization(self, sentera_id: str) -> int | None:
        if sentera_id not in self._organizations:
            self.prime([sentera_id])
        return self._organizations[sentera_id]

    def may_read(self, sentera_id: str) -> bool:
        """A live item in an organization the caller reads (of users: only the caller)."""
        if type_code_of(sentera_id) is TypeCode.USER:
            return sentera_id == self.user_sentera_id
        return self._organization(sentera_id) in self.readable

    def may_write(self, sentera_id: str) -> bool:
        return self._organization(sentera_id) in self.writable
