"""`action` of every synced type: CREATE until the item first changes, then UPDATE, for items
stored before every kind carried it as well."""

from __future__ import annotations

from fieldsync.model.representation import action_of


def test_a_stored_action_is_the_answer() -> None:
    stored = {"action": "UPDATE", "created_at": "2024-01-01T00:00:00Z"}
    assert action_of(stored | {"updated_at": "2024-01-01T00:00:00Z"}) == "UPDATE"
    assert action_of({"action": "CREATE", "updated_at": "2025-01-01T00:00:00Z"}) == "CREATE"


def test_an_item_stored_without_action_was_unchanged_when_updated_as_it_was_made() -> None:
    made = {"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
    assert action_of(made) == "CREATE"
    assert action_of(made | {"updated_at": "2024-02-01T09:30:00Z"}) == "UPDATE"
