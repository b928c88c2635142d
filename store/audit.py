"""The audit log: every repository that changes something records who did it through :func:`put_audit`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.schema import AuditRow, utcnow


def put_audit(
    session: Session, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any] | None = None
) -> AuditRow:
    """Add one audit entry inside the caller's transaction (it commits or rolls back with the change).

    Args:
        session: The session of the change being audited.
        actor: Who: a user, an API key id, "system", "demo" or "feed".
        action: What, e.g. "upsert", "delete", "acknowledge", "clear".
        entity: The kind of thing changed, e.g. "site", "alert", "scene".
        entity_id: Its id.
        detail: Anything else worth keeping (JSON).

    Returns:
        The new entry.
    """
    row = AuditRow(at=utcnow(), actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail or {})
    session.add(row)
    return row
