"""The client lifecycle end to end over in-memory fakes: assign → package → connect → serve."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import RECEIVED, UPDATE_DONE, VALIDATION_DONE, StatusLevel
from fedclient.domain.errors import AuthError, ConfigError, PackageError, TaskFailed, TransientError
from fedclient.domain.model import (
    Assignment,
    AssignmentStatus,
    Identity,
    PackageMode,
    Task,
    TaskKind,
)
from fedclient.domain.outbox import OutboxEntry, ResultKind
from fedclient.domain.package import ChecksumVerdict
from fedclient.domain.results import TrainingOutcome
from fedclient.domain.retry import RetryConfig
from fedclient.domain.state import ClientState
from fedclient.domain.tasks import DIRECT_ATTEMPTS
from fedclient.testing.fakes import (
    InMemoryOutboxStore,
    InMemoryTrainer,
)

from tests.unit.world import ASSIGNED, COMBINER, MANIFEST, ROUND_CONFIG, World, lines, meta, train_task


async def test_train_task_end_to_end(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: any(s.text == UPDATE_DONE for s in lines(w.combiner.statuses)))

    [update] = w.combiner.updates
    assert update.model_id == "seed"
    assert update.receiver_name == "combiner-0"
    assert meta(update)["training_metadata"] == {"num_examples": 42}
    assert meta(update)["config"] == ROUND_CONFIG  # raw request string, JSON in JSON
    assert {"fetch_model", "exec_training", "upload_model", "processing_time"} <= set(meta(update))
    assert w.combiner.models[update.model_update_id] == b"seed+"
    assert w.trainer.calls[0][2] == {"lr": "0.1"}
    # the controller's client_id is adopted, and used to subscribe
    assert w.life.identity == Identity("alice", "cid-1")
    assert w.combiner.connects[0] == (COMBINER, Identity("alice", "cid-1"))
    texts = [(s.text, s.level) for s in lines(w.combiner.statuses)]
    assert texts[0] == (RECEIVED, StatusLevel.AUDIT)
    assert texts[-1] == (UPDATE_DONE, StatusLevel.AUDIT)
    assert list(w.life.state.history) == [ClientState.IDLE, ClientState.TRAINING, ClientState.IDLE]
    assert w.life.checksum_verdict is ChecksumVerdict.VERIFIED
    assert w.combiner.heartbeats, "heartbeats run beside the task stream"


async def test_validate_task_end_to_end(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", Task(TaskKind.VALIDATE, "seed", "s1", "c2", "", "combiner-0"))
    await w.run_until(lambda: any(s.text == VALIDATION_DONE for s in lines(w.combiner.statuses)))
    [validation] = w.combiner.validations
    assert validation.metrics == {"accuracy": 0.04}
    assert (validation.model_id, validation.correlation_id, validation.session_id) == ("seed", "c2", "s1")
    assert list(w.life.state.history) == [ClientState.IDLE, ClientState.VALIDATING, ClientState.IDLE]


async def test_predict_task_end_to_end(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", Task(TaskKind.PREDICT, "seed", "p1", "c3", "", "combiner-0"))
    await w.run_until(lambda: bool(w.combiner.predictions))
    [prediction] = w.combiner.predictions
    assert prediction.output == {"prediction": 4}
    assert prediction.prediction_id == "p1"


async def test_try_again_then_assigned(tmp_path: Path, archive: Path) -> None:
    wait = Assignment(AssignmentStatus.TRY_AGAIN, "No compute package found.")
    w = World(tmp_path, archive, wait, wait, ASSIGNED)
    await w.run_until(lambda: bool(w.combiner.connects))
    assert len(w.discovery.requests) == 3
    assert w.discovery.requests[0].package is PackageMode.REMOTE
    assert len(w.clock.sleeps) >= 2


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (AssignmentStatus.UNAUTHORIZED, AuthError, "Token expired"),
        (AssignmentStatus.UNMATCHED_CONFIG, ConfigError, "No combiner available."),
    ],
)
async def test_final_refusals_stop_the_client(
    tmp_path: Path, archive: Path, status: AssignmentStatus, error: type[Exception], text: str
) -> None:
    w = World(tmp_path, archive, Assignment(status, text))
    with pytest.raises(error, match=text):
        await w.life.run(w.stop)
    assert len(w.discovery.requests) == 1, "a final answer is never retried"
    assert w.source.downloads == 0


async def test_unreachable_controller_is_retried_then_given_up(tmp_path: Path, archive: Path) -> None:
    down = Assignment(AssignmentStatus.UNREACHABLE, "connection refused")
    w = World(tmp_path, archive, down, unreachable_retry=RetryConfig(initial=1, maximum=2, max_attempts=4))
    with pytest.raises(TransientError, match="unreachable after 4 tries"):
        await w.life.run(w.stop)
    assert len(w.discovery.requests) == 4


async def test_each_unreachable_try_says_how_many_and_when_the_client_gives_up(
    tmp_path: Path, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import re

    caplog.set_level(logging.WARNING, logger="fedclient")
    down = Assignment(AssignmentStatus.UNREACHABLE, "connection refused")
    retry = RetryConfig(initial=2, maximum=20, max_attempts=5)  # every wait ahead under 90 s: said in s
    w = World(tmp_path, archive, down, unreachable_retry=retry)
    with pytest.raises(TransientError, match="unreachable after 5 tries"):
        await w.life.run(w.stop)
    line = re.compile(
        r"controller unreachable \(connection refused\); attempt (\d) of 5, retrying in ([\d.]+) s; "
        r"giving up in about (\d+) s if it stays unreachable"
    )
    said = [line.fullmatch(r.getMessage()) for r in caplog.records if "unreachable (" in r.getMessage()]
    assert all(said) and [int(m[1]) for m in said if m] == [1, 2, 3, 4]
    assert [f"{s:.1f}" for s in w.clock.sleeps] == [m[2] for m in said if m]
    for n, m in enumerate(m for m in said if m):
        # The time still ahead (on the fake clock) is never more than the line said.
        assert sum(w.clock.sleeps[n:]) <= int(m[3]) + 0.5


async def test_unreachable_then_assigned(tmp_path: Path, archive: Path) -> None:
    down = Assignment(AssignmentStatus.UNREACHABLE, "connection refused")
    w = World(tmp_path, archive, down, ASSIGNED)
    await w.run_until(lambda: bool(w.combiner.connects))
    assert len(w.discovery.requests) == 2


async def test_failed_training_is_reported_and_the_client_lives_on(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, trainer=InMemoryTrainer(fail="train"))
    w.combiner.submit("cid-1", train_task())
    w.combiner.submit("cid-1", Task(TaskKind.VALIDATE, "seed", "s1", "c2", "", "combiner-0"))
    await w.run_until(lambda: bool(w.combiner.validations))
    errors = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert len(errors) == 1 and "train exited with code 1" in errors[0].text
    assert errors[0].kind is TaskKind.TRAIN
    assert not w.combiner.updates
    assert w.life.state.state is ClientState.IDLE


async def test_missing_model_is_reported(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", train_task(model="nope"))
    await w.run_until(lambda: any(s.level is StatusLevel.ERROR for s in lines(w.combiner.statuses)))
    [error] = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert "nope" in error.text


async def test_checksum_mismatch_is_fatal(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, checksum="0" * 64)
    with pytest.raises(PackageError, match="checksum mismatch"):
        await w.life.run(w.stop)
    assert not w.combiner.connects


async def test_unverified_package_refused_when_checksum_required(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, checksum=None, require_checksum=True)
    with pytest.raises(PackageError, match="could not be verified"):
        await w.life.run(w.stop)


async def test_stream_end_reconnects_and_serves_again(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.end_stream("cid-1")
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.combiner.connects) == 2
    assert w.life.connects == 2


async def test_refused_connection_is_retried(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.refuse_connects = 3
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.combiner.connects) == 4


async def test_a_refused_update_is_sent_again_without_a_second_upload(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.fail_next["send_update"] = 2
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.combiner.updates) == 1, "delivered exactly once"
    # the combiner acknowledged the upload: only SendModelUpdate is repeated (three tries, one upload)
    [update] = w.combiner.updates
    assert w.combiner.uploads == [update.model_update_id]
    assert w.combiner.tries("send_update", update.model_update_id) == 3


async def test_the_plans_delivery_retry_paces_a_tasks_own_retries(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, delivery_retry=RetryConfig(initial=0.125, maximum=0.125, jitter=0))
    w.combiner.fail_next["download"] = 2
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert w.combiner.tries("download", "seed") == 3
    assert w.clock.sleeps.count(0.125) == 2, "both retries waited the plan's backoff"


async def test_a_result_sent_without_the_outbox_fails_its_task_after_a_bounded_number_of_tries(
    tmp_path: Path, archive: Path
) -> None:
    w = World(tmp_path, archive)
    w.combiner.fail_next["send_prediction"] = 1000
    w.combiner.submit("cid-1", Task(TaskKind.PREDICT, "seed", "p1", "c3", "", "combiner-0"))
    await w.run_until(lambda: any(s.level is StatusLevel.ERROR for s in lines(w.combiner.statuses)))
    assert w.combiner.tries("send_prediction") == DIRECT_ATTEMPTS
    [error] = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert "predict task for model seed failed: send_prediction: scripted failure" in error.text


async def test_auth_error_on_task_stream_stops_the_client(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.fail_next["tasks"] = 1
    w.combiner.fail_with["tasks"] = AuthError("the combiner refused the token: Invalid token")
    with pytest.raises(AuthError, match="Invalid token"):
        await asyncio.wait_for(w.life.run(w.stop), 5)


async def test_local_package_skips_download(tmp_path: Path, archive: Path) -> None:
    pkg = tmp_path / "local"
    pkg.mkdir()
    (pkg / "fedn.yaml").write_text(json.dumps(MANIFEST))
    w = World(tmp_path, archive, package_mode=PackageMode.LOCAL, local_package_dir=pkg)
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert w.source.downloads == 0
    assert w.life.package_dir == pkg


async def test_direct_combiner_skips_the_controller(tmp_path: Path, archive: Path) -> None:
    pkg = tmp_path / "local"
    pkg.mkdir()
    (pkg / "fedn.yaml").write_text(json.dumps(MANIFEST))
    w = World(tmp_path, archive, package_mode=PackageMode.LOCAL, local_package_dir=pkg, combiner=COMBINER)
    w.combiner.submit("cid-0", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert not w.discovery.requests


async def test_stop_ends_the_client_while_it_waits_for_the_controller(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, Assignment(AssignmentStatus.TRY_AGAIN, "No compute package found."))
    runner = asyncio.create_task(w.life.run(w.stop))
    async with asyncio.timeout(5):
        while len(w.discovery.requests) < 3:
            await asyncio.sleep(0.005)
    w.stop.set()
    await asyncio.wait_for(runner, 2)  # returns normally, promptly
    asked = len(w.discovery.requests)
    await asyncio.sleep(0.05)
    assert len(w.discovery.requests) == asked
    assert not w.combiner.connects


async def test_update_survives_an_outage_longer_than_the_first_retries(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", train_task())
    w.combiner.end_stream("cid-1")  # the connection drops right behind the task
    w.combiner.fail_next["upload"] = 1
    w.combiner.refuse_connects = 6  # and stays down for a while
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.combiner.updates) == 1
    assert len(w.combiner.connects) == 8
    assert not [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]


class CrashingTrainer(InMemoryTrainer):
    async def train(self, in_model: Path, out_model: Path, client_settings: object) -> dict[str, object]:
        raise PermissionError("disk says no")


async def test_unexpected_errors_in_a_task_are_reported_and_serving_goes_on(
    tmp_path: Path, archive: Path
) -> None:
    w = World(tmp_path, archive, trainer=CrashingTrainer())
    w.combiner.submit("cid-1", train_task())
    w.combiner.submit("cid-1", Task(TaskKind.VALIDATE, "seed", "s1", "c2", "", "combiner-0"))
    await w.run_until(lambda: bool(w.combiner.validations))
    [error] = [s for s in lines(w.combiner.statuses) if s.level is StatusLevel.ERROR]
    assert "PermissionError: disk says no" in error.text


async def test_a_refusal_while_reassigning_keeps_the_old_combiner(tmp_path: Path, archive: Path) -> None:
    no_combiner = Assignment(AssignmentStatus.UNMATCHED_CONFIG, "No combiner available.")
    w = World(tmp_path, archive, ASSIGNED, no_combiner, reassign_after=2)
    w.combiner.refuse_connects = 5
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert len(w.discovery.requests) >= 2, "the controller was asked again"
    assert w.life.combiner == COMBINER


async def test_auth_error_on_heartbeat_stops_the_client(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.fail_next["heartbeat"] = 1
    w.combiner.fail_with["heartbeat"] = AuthError("the combiner refused the token: Invalid token")
    with pytest.raises(AuthError):
        await asyncio.wait_for(w.life.run(w.stop), 5)


async def test_startup_entry_point_runs_once_before_serving(tmp_path: Path) -> None:
    manifest = {"entry_points": {**MANIFEST["entry_points"], "startup": {"command": "python data.py"}}}
    archive = tmp_path / "package.json"
    archive.write_text(json.dumps({"fedn.yaml": json.dumps(manifest)}))
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert [c[0] for c in w.trainer.calls] == ["startup", "train"]


async def test_failing_startup_entry_point_is_a_package_error(tmp_path: Path) -> None:
    manifest = {"entry_points": {**MANIFEST["entry_points"], "startup": {"command": "python data.py"}}}
    archive = tmp_path / "package.json"
    archive.write_text(json.dumps({"fedn.yaml": json.dumps(manifest)}))
    w = World(tmp_path, archive, trainer=InMemoryTrainer(fail="startup"))
    with pytest.raises(PackageError, match="startup entry point failed"):
        await w.life.run(w.stop)
    assert not w.combiner.connects


class _DataAboveThePackage(InMemoryTrainer):
    async def startup(self) -> None:
        raise TaskFailed(
            "startup failed (exit code 1); last output:\nFileNotFoundError: [Errno 2] "
            "No such file or directory: '../data/diabetes.csv'"
        )


@pytest.mark.parametrize("extract_dir", [None, "package"])
async def test_a_startup_looking_above_the_package_gets_the_layout_hint(
    tmp_path: Path, extract_dir: str | None
) -> None:
    manifest = {"entry_points": {**MANIFEST["entry_points"], "startup": {"command": "python data.py"}}}
    archive = tmp_path / "package.json"
    archive.write_text(json.dumps({"fedn.yaml": json.dumps(manifest)}))
    target = {"package_extract_dir": tmp_path / extract_dir} if extract_dir else {}
    w = World(tmp_path, archive, trainer=_DataAboveThePackage(), **target)
    with pytest.raises(PackageError) as caught:
        await w.life.run(w.stop)
    assert "No such file or directory: '../data/diabetes.csv'" in str(caught.value)
    hinted = "set FEDN_PACKAGE_EXTRACT_DIR=package" in str(caught.value)
    assert hinted is (extract_dir is None), caught.value


async def test_a_task_delivered_twice_is_trained_once(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive)
    w.combiner.submit("cid-1", train_task(corr="same"))
    w.combiner.submit("cid-1", train_task(corr="same"))
    w.combiner.submit("cid-1", train_task(corr="other"))
    await w.run_until(lambda: len(w.combiner.updates) == 2)
    assert [c[0] for c in w.trainer.calls] == ["train", "train"]
    assert w.life.inbox is not None
    assert [t.correlation_id for t, _ in w.life.inbox.dropped] == ["same"]


async def test_results_left_by_an_earlier_run_are_delivered_at_start(tmp_path: Path, archive: Path) -> None:
    store = InMemoryOutboxStore(tmp_path / "box")
    model = tmp_path / "left.bin"
    model.write_bytes(b"trained-before-the-crash")
    now = time.time()
    store.save(
        OutboxEntry(
            "left",
            ResultKind.UPDATE,
            "seed",
            "combiner-0",
            "c-old",
            "s1",
            "1",
            TrainingOutcome({"num_examples": 3}, fetch=0.1, execute=0.2),
            now,
            now + 60,
            has_model=True,
        ),
        model,
    )
    w = World(tmp_path, archive, outbox_store=store)
    await w.run_until(lambda: bool(w.combiner.updates))
    [update] = w.combiner.updates
    assert update.correlation_id == "c-old"
    assert w.combiner.models[update.model_update_id] == b"trained-before-the-crash"
    assert not store.entries
