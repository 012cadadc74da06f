"""The SQL of the per-token request counters (`rate_limit_windows`), shared by every worker
process on PostgreSQL (SQLite serves from one process and counts in memory).

Each statement runs alone in autocommit: no writer lock, and no row a bulk load ever touches,
so counting a request never waits behind a load.
"""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, delete
from sqlalchemy.dialects.postgresql import insert

from fieldsync.storage import tables as t

_windows = t.rate_limit_windows


# Built once: each request only binds the token and the window.
_COUNT_REQUEST = (
    insert(_windows)
    .values(token_id=bindparam("token_id"), window_start=bindparam("window_start"), request_count=1)
    .on_conflict_do_update(
        index_elements=[_windows.c.token_id, _windows.c.window_start],
        set_={"request_count": _windows.c.request_count + 1},
    )
    .returning(_windows.c.request_count)
)
_DELETE_WINDOWS_BEFORE = delete(_windows).where(_windows.c.window_start < bindparam("window_start"))


def count_request(engine: Engine, token_id: int, window_start: int) -> int:
    """Add one request of a token to a window, atomically; the window's count including it."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        parameters = {"token_id": token_id, "window_start": window_start}
        count: int = conn.execute(_COUNT_REQUEST, parameters).scalar_one()
        return count


def delete_windows_before(engine: Engine, window_start: int) -> None:
    """Forget every window that started before `window_start`."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(_DELETE_WINDOWS_BEFORE, {"window_start": window_start})
