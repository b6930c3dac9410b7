"""The outbox on disk across versions: entries written before the typed format are still delivered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.conversions import update_pb
from fedclient.adapters.outbox_format import entry_from_json, entry_to_json
from fedclient.adapters.outbox_store import FileOutboxStore
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import Identity
from fedclient.domain.outbox import Delivery, Outbox, OutboxEntry, OutboxLedger, ResultKind
from fedclient.domain.results import TrainingOutcome, ValidationOutcome
from fedclient.testing.fakes import CountingIds, FakeClock, InMemoryCombiner, InMemoryLink, SeededRandom

ME = Identity("alice", "cid-1")
CONFIG = '{"round_id": "3"}'


def format_1(key: str, kind: str, payload: dict[str, object]) -> dict[str, object]:
    """An entry exactly as the previous version wrote it (no "format", the payload in FEDn's layout)."""
    now = time.time()
    return {
        "key": key,
        "kind": kind,
        "model_id": "global-1",
        "receiver_name": "combiner",
        "correlation_id": f"corr-{key}",
        "session_id": "s1",
        "round_id": "3",
        "payload": payload,
        "created_at": now,
        "expires_at": now + 600,
        "uploaded_id": "",
        "has_model": kind == "update",
        "sending": False,
    }


async def test_a_restart_delivers_updates_and_validations_an_earlier_version_left(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    box.mkdir()
    meta = {
        "training_metadata": {"num_examples": 5},
        "exec_training": 2.0,
        "fetch_model": 0.5,
        "config": CONFIG,
    }
    (box / "old1.json").write_text(json.dumps(format_1("old1", "update", meta)))
    (box / "old1.model").write_bytes(b"trained before the upgrade")
    (box / "old2.json").write_text(json.dumps(format_1("old2", "validation", {"accuracy": 0.75})))
    combiner = InMemoryCombiner(models={"global-1": b"g"})
    links = LinkHolder()
    links.set(InMemoryLink(combiner, ME))
    outbox = Outbox(
        OutboxLedger(FileOutboxStore(box)), links, FakeClock(), ids=CountingIds(), random=SeededRandom()
    )

    assert await outbox.load() == 2
    assert await outbox.flush() == {**dict.fromkeys(Delivery, 0), Delivery.DELIVERED: 2}

    [update] = combiner.updates
    assert combiner.models[update.model_update_id] == b"trained before the upgrade"
    assert update.correlation_id == "corr-old1" and update.task_data == CONFIG
    # On the wire the meta is what the previous version sent: its layout, the upload time added.
    sent = json.loads(update_pb(update, ME).meta)
    assert list(sent) == [*meta, "upload_model", "processing_time"]
    assert {k: sent[k] for k in meta} == meta
    assert sent["processing_time"] == 2.5 + sent["upload_model"]
    [validation] = combiner.validations
    assert validation.metrics == {"accuracy": 0.75} and validation.correlation_id == "corr-old2"
    assert not list(box.iterdir()), "delivered entries are removed"


def test_the_current_format_round_trips(tmp_path: Path) -> None:
    now = time.time()
    update = OutboxEntry(
        "k1",
        ResultKind.UPDATE,
        "global-1",
        "combiner",
        "corr",
        "s1",
        "3",
        TrainingOutcome({"num_examples": 5}, fetch=0.5, execute=2.0),
        now,
        now + 60,
        uploaded_id="u1",
        has_model=True,
        task_data=CONFIG,
    )
    validation = OutboxEntry(
        "k2",
        ResultKind.VALIDATION,
        "m",
        "combiner",
        "c2",
        "s1",
        "",
        ValidationOutcome({"acc": 1}),
        now,
        now + 60,
    )
    for entry in (update, validation):
        written = json.loads(json.dumps(entry_to_json(entry)))
        assert written["format"] == 2
        assert entry_from_json(written) == entry
    store = FileOutboxStore(tmp_path / "box")
    store.save(validation)
    assert store.load() == [validation]


def test_an_entry_from_a_newer_format_is_refused_not_misread() -> None:
    data = format_1("k", "update", {"training_metadata": {}})
    data["format"] = 3
    with pytest.raises(ValueError, match="format 3"):
        entry_from_json(data)
