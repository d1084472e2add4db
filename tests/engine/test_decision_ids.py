"""Decision ids: random version-4 UUIDs as 32 hex digits, as uuid.uuid4().hex wrote them before."""

from __future__ import annotations

import uuid

from rules_engine.engine.engine import new_decision_id


def test_a_decision_id_is_a_version_4_uuid_in_hex() -> None:
    ids = [new_decision_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1_000]:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == text
