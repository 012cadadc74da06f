"""`pull`: mirror everything a token reads into a directory, resumably.

Discovery runs top down (organizations, then each organization's fields, each field's surveys);
each survey then brings its mosaics, images, COGs, feature sets and files, each field and
organization the feature sets and files they own, and each organization its flight tasks.
Every scope is the documented sync loop over the hashes the mirror holds, one page per
transaction; rows whose parent is gone are swept; then bytes are fetched.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from fieldsync.client.downloads import (
    PART_SUFFIX,
    LinkExpiredError,
    Wanted,
    download,
    is_complete,
    safe_name,
)
from fieldsync.client.errors import ClientError, DiskFullError, NotFoundError
from fieldsync.client.mirror import LocalCopy, Mirror, MirrorError
from fieldsync.client.progress import PullProgress
from fieldsync.client.queries import (
    COGS,
    FEATURE_SETS,
    FIELDS,
    FILES,
    FLIGHT_TASKS,
    IMAGES,
    KINDS,
    MOSAICS,
    SURVEYS,
    Kind,
)
from fieldsync.client.sdk import FieldSyncClient, Owner, owners_input
from fieldsync.client.sync import sync_pages

LOCK_FILE = ".pull.lock"
MAX_OWNERS_PER_CALL = 2_000
LINK_REFRESHES = 2
BYTES_DIRECTORIES = {"images": "images", "files": "files"}


class PullStopped(Exception):
    """Raised in a download thread when the pull is stopping (Ctrl-C, a full disk)."""


class PullBusyError(ClientError):
    """Another pull holds the directory."""


@dataclass(frozen=True)
class PullOptions:
    organizations: tuple[str, ...] = ()
    surveys: tuple[str, ...] = ()
    download: bool = True
    jobs: int = 4
    retries: int = 5


@dataclass
class KindSummary:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class PullSummary:
    """What a pull did, per type, and what went wrong without stopping it."""

    kinds: dict[str, KindSummary] = field(
        default_factory=lambda: {name: KindSummary() for name in KINDS}
    )
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "types": {name: vars(kind) for name, kind in self.kinds.items()},
            "failures": self.failures,
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
        }


def hold_directory(directory: Path) -> FileLock:
    """The directory's pull lock, taken; a second pull into it is refused at once. The lock
    is the operating system's, so a pull that was killed does not leave it held."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(directory / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PullBusyError(
            f"another fieldsync pull is writing to {directory}: wait for it to finish, "
            "or pull into another directory"
        ) from None
    return lock


class Puller:
    """One pull of `client`'s readable data into `mirror` (whose directory lock is held)."""

    def __init__(
        self,
        client: FieldSyncClient,
        mirror: Mirror,
        options: PullOptions,
        progress: PullProgress | None = None,
    ) -> None:
        self.client = client
        self.transport = client.transport
        self.mirror = mirror
        self.options = options
        self.progress = progress or PullProgress()
        self.summary = PullSummary()
        self._applied: dict[str, int] = {name: 0 for name in KINDS}
        self._stop = threading.Event()

    def run(self) -> PullSummary:
        started = time.monotonic()
        organizations = self._discover_organizations()
        fields = self._sync_children(FIELDS, organizations)
        surveys = self._selected_surveys(self._sync_children(SURVEYS, fields))
        if self.options.surveys:
            fields = self._fields_of(surveys)
        for survey in surveys:
            for kind in (MOSAICS, IMAGES, COGS):
                self._sync_scope(kind, {"survey_sentera_id": survey}, [survey])
        self._pull_owned(organizations, fields, surveys)
        for organization in organizations:
            self._sync_scope(FLIGHT_TASKS, _organization_scope(organization), [organization])
        self._sweep()
        if self.options.download:
            self._download_all()
        self.summary.seconds = time.monotonic() - started
        self.summary.requests = self.transport.requests_sent
        self.summary.bytes_sent = self.transport.bytes_sent
        self.summary.bytes_received = self.transport.bytes_received
        return self.summary

    def _claim_mirror(self) -> None:
        """A mirror holds one server's data: its hashes mean nothing to another server."""
        held = self.mirror.meta("server")
        if held is not None and held != self.transport.endpoint:
            raise MirrorError(
                f"{self.mirror.directory} mirrors {held}, not {self.transport.endpoint}: "
                "pull into another directory"
            )
        self.mirror.set_meta("server", self.transport.endpoint)

    # -- discovery -------------------------------------------------------------------------

    def _discover_organizations(self) -> list[str]:
        organizations = self.client.organizations()
        self._claim_mirror()
        self.mirror.replace_organizations(organizations)
        readable = {org["sentera_id"]: org for org in organizations}
        wanted = set(self.options.organizations)
        missing = sorted(wanted - readable.keys())
        for sentera_id in missing:
            self.summary.failures.append(
                f"organization {sentera_id}: not found, or the token may not read it"
            )
        if not wanted:
            return sorted(readable)
        return sorted(s for s in readable if _within(s, wanted, readable))

    def _sync_children(self, kind: Kind, parents: Sequence[str]) -> list[str]:
        """Sync `kind` under each parent (fields of organizations, surveys of fields) and
        return the sentera_ids now held under them."""
        for parent in parents:
            scope = _organization_scope(parent) if kind is FIELDS else {"field_sentera_id": parent}
            self._sync_scope(kind, scope, [parent])
        return self.mirror.ids(kind.name, kind.parent, parents)

    def _selected_surveys(self, surveys: list[str]) -> list[str]:
        if not self.options.surveys:
            return surveys
        held = set(surveys)
        for sentera_id in self.options.surveys:
            if sentera_id not in held:
                self.summary.failures.append(
                    f"survey {sentera_id}: not found among the surveys the token reads"
                )
        return [s for s in self.options.surveys if s in held]

    def _fields_of(self, surveys: list[str]) -> list[str]:
        return sorted({row["field_sentera_id"] for row in self.mirror.rows_of("surveys", surveys)})

    # -- what owners own -------------------------------------------------------------------

    def _pull_owned(self, organizations: list[str], fields: list[str], surveys: list[str]) -> None:
        """Feature sets of the surveys, fields and organizations, then the files of those and
        of the surveys' mosaics, the feature sets and the organizations' logos: owner lists
        sent together (up to MAX_OWNERS_PER_CALL a call), not one call per owner."""
        feature_set_owners: list[Owner] = [
            *(("SURVEY", s) for s in surveys),
            *(("FIELD", f) for f in fields),
            *(("ORGANIZATION", o) for o in organizations),
        ]
        self._sync_owners(FEATURE_SETS, feature_set_owners)
        owner_ids = [sentera_id for _, sentera_id in feature_set_owners]
        feature_sets = self.mirror.ids("feature_sets", "feature_set_owner_sentera_id", owner_ids)
        mosaics = self.mirror.ids("mosaics", "survey_sentera_id", surveys)
        logos = self.mirror.ids("logos", "organization_sentera_id", organizations)
        file_owners: list[Owner] = [
            *(("SURVEY", s) for s in surveys),
            *(("MOSAIC", m) for m in mosaics),
            *(("FIELD", f) for f in fields),
            *(("FEATURE_SET", fs) for fs in feature_sets),
            *(("LOGO", logo) for logo in logos),
        ]
        self._sync_owners(FILES, file_owners)

    def _sync_owners(
        self, kind: Kind, owners: Sequence[Owner], omit: frozenset[str] = frozenset()
    ) -> None:
        for start in range(0, len(owners), MAX_OWNERS_PER_CALL):
            chunk = owners[start : start + MAX_OWNERS_PER_CALL]
            scope = {"owners": owners_input(chunk)}
            self._sync_scope(kind, scope, [sentera_id for _, sentera_id in chunk], omit)

    # -- the loop --------------------------------------------------------------------------

    def _sync_scope(
        self,
        kind: Kind,
        scope: dict[str, Any],
        parents: list[str],
        omit: frozenset[str] = frozenset(),
    ) -> None:
        """The sync loop over one scope, each page applied in one transaction. `omit` names
        items whose hashes are left out until the server has sent them again (fresh links)."""
        started = time.monotonic()
        totals = self.summary.kinds[kind.name]
        pending = set(omit)
        self.progress.scope(kind.name, _label(scope))
        try:
            for page in sync_pages(
                self.transport,
                kind,
                scope,
                lambda: self.mirror.held_hashes(kind, parents, frozenset(pending)),
            ):
                counts = self.mirror.apply_page(kind, page)
                pending.difference_update(item["sentera_id"] for item in page.upserted)
                totals.created += counts.created
                totals.updated += counts.updated
                totals.deleted += counts.deleted
                totals.failed += len(page.failed)
                self.summary.failures.extend(
                    f"{kind.sync_field} {_label(scope)}: {f.message} {f.details or ''}".rstrip()
                    for f in page.failed
                )
                self._applied[kind.name] += len(page.upserted) + len(page.deleted)
                self.progress.items(kind.name, self._applied[kind.name], page.remaining_count)
        except NotFoundError as exc:
            totals.failed += 1
            self.summary.failures.append(f"{kind.sync_field} {_label(scope)}: {exc}")
        finally:
            totals.seconds += time.monotonic() - started

    def _sweep(self) -> None:
        for table, removed in self.mirror.sweep_orphans().items():
            if table in self.summary.kinds:
                self.summary.kinds[table].deleted += removed

    # -- bytes -----------------------------------------------------------------------------

    def _download_all(self) -> None:
        copies = [c for kind in BYTES_DIRECTORIES for c in self.mirror.copies(kind)]
        work = self._needing_bytes(copies)
        for _ in range(LINK_REFRESHES + 1):
            expired = self._download(work)
            if not expired:
                break
            self._refresh_links(expired)
            fresh = {(c.kind, c.sentera_id) for c in expired}
            work = [
                c
                for kind in BYTES_DIRECTORIES
                for c in self.mirror.copies(kind, [s for k, s in fresh if k == kind])
            ]
        else:
            for copy in expired:
                self._fail_bytes(copy, "its download link kept expiring")
        self._remove_unreferenced_bytes()

    def target(self, copy: LocalCopy) -> Path:
        directory = self.mirror.directory / BYTES_DIRECTORIES[copy.kind] / copy.sentera_id
        return directory / safe_name(copy.filename, copy.sentera_id)

    def _needing_bytes(self, copies: list[LocalCopy]) -> list[LocalCopy]:
        """The copies whose bytes are not on disk as recorded; a file that is there but was
        not recorded (a pull killed after the rename) is verified and recorded."""
        needed: list[LocalCopy] = []
        for copy in copies:
            target = self.target(copy)
            if _unchanged_since_verified(copy, target):
                continue
            if is_complete(target, copy.size, copy.checksum):
                self._record(copy, target)
                continue
            target.unlink(missing_ok=True)
            needed.append(copy)
        return needed

    def _download(self, copies: list[LocalCopy]) -> list[LocalCopy]:
        """Fetch `copies`, `jobs` at a time; return those whose links expired."""
        if not copies:
            return []
        self.progress.bytes_planned(len(copies), sum(c.size or 0 for c in copies))
        expired: list[LocalCopy] = []
        with ThreadPoolExecutor(max_workers=self.options.jobs) as pool:
            futures = {self._submit(pool, copy): copy for copy in copies if copy.url}
            for copy in copies:
                if not copy.url:
                    self._fail_bytes(copy, "the server gave no download link")
            try:
                self._collect(futures, expired)
            except BaseException:  # a full disk, Ctrl-C: stop the other downloads at once
                self._stop.set()
                pool.shutdown(cancel_futures=True)
                raise
        return expired

    def _collect(self, futures: dict[Future[None], LocalCopy], expired: list[LocalCopy]) -> None:
        """Record each finished download, in order; note expired links and failures."""
        for future, copy in futures.items():
            try:
                future.result()
            except LinkExpiredError:
                expired.append(copy)
            except DiskFullError:
                raise
            except ClientError as exc:
                self._fail_bytes(copy, str(exc))
            else:
                self._record(copy, self.target(copy))
                self.summary.kinds[copy.kind].bytes += copy.size or 0

    def _submit(self, pool: ThreadPoolExecutor, copy: LocalCopy) -> Future[None]:
        assert copy.url is not None
        wanted = Wanted(copy.url, self.target(copy), copy.size, copy.checksum)
        return pool.submit(download, self.transport, wanted, self._bytes_done)

    def _bytes_done(self, count: int) -> None:
        """Progress of a download thread; once the pull is stopping, the thread stops too."""
        if self._stop.is_set():
            raise PullStopped
        self.progress.bytes_done(count)

    def _refresh_links(self, expired: list[LocalCopy]) -> None:
        """Sync the scopes of `expired` again without their hashes: the server sends those
        items again, with fresh links."""
        omit = frozenset(c.sentera_id for c in expired)
        images = [c.sentera_id for c in expired if c.kind == "images"]
        for survey in sorted(
            {row["survey_sentera_id"] for row in self.mirror.rows_of("images", images)}
        ):
            self._sync_scope(IMAGES, {"survey_sentera_id": survey}, [survey], omit)
        files = [c.sentera_id for c in expired if c.kind == "files"]
        owners = sorted(
            {
                (row["file_owner_owner_type"], row["file_owner_sentera_id"])
                for row in self.mirror.rows_of("files", files)
            }
        )
        if owners:
            self._sync_owners(FILES, owners, omit)

    def _record(self, copy: LocalCopy, target: Path) -> None:
        stat = target.stat()
        relative = str(target.relative_to(self.mirror.directory))
        self.mirror.record_copy(copy, relative, stat.st_size, stat.st_mtime_ns)

    def _fail_bytes(self, copy: LocalCopy, reason: str) -> None:
        self.summary.kinds[copy.kind].failed += 1
        self.summary.failures.append(f"{copy.kind[:-1]} {copy.sentera_id} bytes: {reason}")

    def _remove_unreferenced_bytes(self) -> None:
        """Delete what is on disk for items the mirror no longer holds (or holds elsewhere)."""
        kept = self.mirror.local_paths()
        for directory in BYTES_DIRECTORIES.values():
            root = self.mirror.directory / directory
            if not root.is_dir():
                continue
            for item_dir in root.iterdir():
                for path in item_dir.iterdir() if item_dir.is_dir() else [item_dir]:
                    relative = str(path.relative_to(self.mirror.directory))
                    if relative not in kept and not self._in_flight(path):
                        path.unlink(missing_ok=True)
                _remove_if_empty(item_dir)

    def _in_flight(self, path: Path) -> bool:
        """A `.part` of an item still held is kept for the next pull to resume."""
        if not path.name.endswith(PART_SUFFIX):
            return False
        kind = path.parent.parent.name
        return bool(self.mirror.ids(kind, "sentera_id", [path.parent.name]))


def _unchanged_since_verified(copy: LocalCopy, target: Path) -> bool:
    if copy.local_checksum != copy.checksum or copy.local_path is None:
        return False
    try:
        stat = target.stat()
    except FileNotFoundError:
        return False
    return (stat.st_size, stat.st_mtime_ns) == (copy.local_size, copy.local_mtime_ns)


def _remove_if_empty(directory: Path) -> None:
    if directory.is_dir() and not any(directory.iterdir()):
        os.rmdir(directory)


def _organization_scope(organization: str) -> dict[str, Any]:
    return {"organization_sentera_id": organization, "include_descendant_organizations": False}


def _within(sentera_id: str, wanted: set[str], organizations: dict[str, Any]) -> bool:
    """True when the organization is one of `wanted` or below one of them."""
    seen: set[str] = set()
    current: str | None = sentera_id
    while current is not None and current not in seen:
        if current in wanted:
            return True
        seen.add(current)
        parent = organizations.get(current, {}).get("parent_organization_id")
        current = parent if parent in organizations else None
    return False


def _label(scope: dict[str, Any]) -> str:
    owners = scope.get("owners")
    if owners:
        first = owners[0]
        more = f" +{len(owners) - 1}" if len(owners) > 1 else ""
        return f"{first['owner_type'].lower()} {first['sentera_id']}{more}"
    for key, value in scope.items():
        if key.endswith("_sentera_id"):
            return f"{key.removesuffix('_sentera_id')} {value}"
    return ""
