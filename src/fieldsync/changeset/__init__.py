"""Changesets: the bulk-load format of `fieldsync load` (docs/changeset spec)."""

from fieldsync.changeset.apply import (
    ChangesetError,
    ChangesetIssue,
    ChangesetSummary,
    apply_changeset,
)

__all__ = ["ChangesetError", "ChangesetIssue", "ChangesetSummary", "apply_changeset"]
