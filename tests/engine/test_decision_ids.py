"""Decision ids: random version-4 UUIDs as 32 hex digits, as uuid.uuid4().hex wrote them before."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from rules_engine.engine.engine import new_decision_id


def test_a_decision_id_is_a_version_4_uuid_in_hex() -> None:
    ids = [new_decision_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1_000]:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == text


def test_threads_never_share_an_id() -> None:
    # Ids are made ahead in batches that threads take from: none may be handed out twice.
    with ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [new_decision_id() for _ in range(2_000)], range(8)))
    ids = [text for batch in batches for text in batch]
    assert len(set(ids)) == len(ids) == 16_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_makes_its_own_ids() -> None:
    new_decision_id()  # the parent holds ids made ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, "".join(new_decision_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4 * 32).decode()
    os.close(read)
    parent = "".join(new_decision_id() for _ in range(4))
    assert child != parent
