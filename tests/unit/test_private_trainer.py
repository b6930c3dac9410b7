"""The privacy guard around whatever trainer runs (adapters.trainers.private), alone and in a client.

What leaves is global + noised clipped delta; a helper fedclient cannot read as arrays, a
split-learning forward pass and a round past the budget are refused with an ERROR status
that names the reason; validation and prediction are served as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dependency_injector import providers
from fedclient.adapters import model_npz
from fedclient.adapters.combiner_grpc.vocabulary import (
    PREDICTION_DONE,
    UPDATE_DONE,
    VALIDATION_DONE,
    StatusLevel,
    task_of,
)
from fedclient.adapters.dp_accountant import RdpAccountant
from fedclient.adapters.dp_mechanism import l2_norm, make_generator
from fedclient.adapters.outbox_store import ProcessOutboxStore
from fedclient.adapters.package_cache import DiskPackageCache
from fedclient.adapters.text_record import FileTextRecord
from fedclient.adapters.trainers.callback_trainer import Callbacks
from fedclient.adapters.trainers.private import PrivateTrainer, PrivateTrainerFactory
from fedclient.app.client_graph import client_graph_lifecycle
from fedclient.app.container import build_container
from fedclient.app.extras import MissingExtra
from fedclient.app.settings_load import load_settings
from fedclient.domain.credentials import Credentials
from fedclient.domain.errors import TaskFailed
from fedclient.domain.lifecycle import ClientPlan, Lifecycle
from fedclient.domain.model import (
    Assignment,
    AssignmentStatus,
    CombinerAddress,
    Identity,
    Task,
    TaskKind,
)
from fedclient.domain.package import Manifest
from fedclient.domain.privacy import RECORD, BudgetExhausted, PrivacyBudget, PrivacySpent, parse_privacy
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    FakeScratch,
    InMemoryCombiner,
    InMemoryConnector,
    InMemoryDiscovery,
    InMemoryPackageSource,
    InMemoryUnpacker,
    RecordingObserver,
    SeededRandom,
)

from tests.unit.world import lines

CLIP = 0.5
SECTION = {"clipping_norm": CLIP, "noise_multiplier": 1.0, "delta": 1e-5, "epsilon_budget": 10}
GLOBAL = [np.zeros((8, 4)), np.zeros(4)]
STEP = [np.ones((8, 4)), np.ones(4)]  # norm 6: clipped to 0.5


class NpzTrainer:
    """Trains by adding STEP to the global model (a numpyhelper npz in, one out)."""

    def __init__(self, write: Callable[[Path, Path], None] | None = None) -> None:
        self.calls: list[str] = []
        self._write = write

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.calls.append("train")
        if self._write is not None:
            self._write(in_model, out_model)
        else:
            arrays = model_npz.load_arrays(in_model)
            model_npz.save_arrays([a + s for a, s in zip(arrays, STEP, strict=True)], out_model)
        return {"num_examples": 12}

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append("validate")
        return {"accuracy": 0.5}

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        self.calls.append("predict")
        return {"predictions": [1]}

    async def forward(self, client_id: str, out_embeddings: Path, sl_inference: bool) -> dict[str, Any]:
        self.calls.append("forward")
        return {"num_examples": 1}

    async def backward(self, in_gradients: Path, client_id: str) -> None:
        self.calls.append("backward")

    async def startup(self) -> None:
        self.calls.append("startup")


def _budget(tmp_path: Path, **section: Any) -> PrivacyBudget:
    return PrivacyBudget(
        parse_privacy({**SECTION, **section}, "site.yaml: privacy"),
        FileTextRecord(tmp_path / RECORD),
        RdpAccountant(),
    )


def _private(
    tmp_path: Path, inner: NpzTrainer, seed: int = 1, **section: Any
) -> tuple[PrivateTrainer, RecordingObserver]:
    budget = _budget(tmp_path, **section)
    observer = RecordingObserver()
    factory = PrivateTrainerFactory(lambda d, m: inner, budget.policy, budget, make_generator(seed), observer)
    return factory(tmp_path, Manifest({})), observer


def _global(tmp_path: Path) -> Path:
    return model_npz.save_arrays(GLOBAL, tmp_path / "in.npz")


async def test_the_update_that_leaves_is_global_plus_noised_clipped_delta(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = NpzTrainer()
    trainer, observer = _private(tmp_path, inner, seed=5)
    out = tmp_path / "out.npz"
    with caplog.at_level(logging.INFO, logger="fedclient.privacy"):
        metadata = await trainer.train(_global(tmp_path), out, {"lr": "1"})
    assert metadata == {"num_examples": 12}
    released = model_npz.load_arrays(out)
    noise = make_generator(5)
    scale = CLIP / l2_norm(STEP)
    expected = [
        g + s * scale + noise.standard_normal(g.shape) * CLIP for g, s in zip(GLOBAL, STEP, strict=True)
    ]
    for got, want in zip(released, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert not (tmp_path / "trained-out.npz").exists(), "the package's own model never stays behind"
    spent = observer.events[-1][1]
    assert (
        isinstance(spent, PrivacySpent)
        and spent.rounds == 1
        and spent.epsilon == pytest.approx(4.7285, abs=1e-3)
    )
    assert observer.events[0] == ("privacy", PrivacySpent(0.0, 10.0, 1e-5, 0)), "reported at start too"
    [line] = [r.getMessage() for r in caplog.records if r.name == "fedclient.privacy"]
    assert line.startswith(
        "privacy: round ? update clipped (norm 6, bound 0.5), noise σ=0.5; ε spent 4.729 of budget 10"
    )
    assert json.loads((tmp_path / RECORD).read_text())["rounds"] == [{"noise_multiplier": 1.0, "count": 1}]


async def test_clipping_only_releases_the_clipped_update_exactly(tmp_path: Path) -> None:
    trainer, _ = _private(tmp_path, NpzTrainer(), noise_multiplier=0, delta=None, epsilon_budget=None)
    out = tmp_path / "out.npz"
    await trainer.train(_global(tmp_path), out, {})
    delta = [r - g for r, g in zip(model_npz.load_arrays(out), GLOBAL, strict=True)]
    assert l2_norm(delta) <= CLIP and l2_norm(delta) == pytest.approx(CLIP)
    np.testing.assert_allclose(delta[0], STEP[0] * CLIP / l2_norm(STEP))


async def test_a_round_past_the_budget_is_refused_before_the_package_trains(tmp_path: Path) -> None:
    inner = NpzTrainer()
    trainer, _ = _private(tmp_path, inner, epsilon_budget=5)  # one round at z = 1 costs ε 4.73
    await trainer.train(_global(tmp_path), tmp_path / "out.npz", {})
    (tmp_path / "out.npz").unlink()
    with pytest.raises(BudgetExhausted, match=r"privacy budget exhausted: .* budget ε = 5 "):
        await trainer.train(_global(tmp_path), tmp_path / "out.npz", {})
    assert inner.calls == ["train"] and not (tmp_path / "out.npz").exists()
    restarted, _ = _private(tmp_path, inner, epsilon_budget=5)
    with pytest.raises(BudgetExhausted):
        await restarted.train(_global(tmp_path), tmp_path / "out.npz", {})


async def test_a_helper_whose_models_are_not_arrays_is_refused_never_skipped(tmp_path: Path) -> None:
    inner = NpzTrainer()
    trainer, _ = _private(tmp_path, inner)
    trainer.use_helper("binaryhelper")
    with pytest.raises(
        TaskFailed, match=r"privacy section needs numpyhelper models .* helper_type is 'binaryhelper'"
    ):
        await trainer.train(_global(tmp_path), tmp_path / "out.npz", {})
    assert inner.calls == [] and not (tmp_path / RECORD).exists()


async def test_a_trained_model_that_is_not_npz_releases_nothing_and_costs_nothing(tmp_path: Path) -> None:
    trainer, _ = _private(tmp_path, NpzTrainer(write=lambda i, o: o.write_bytes(b"torch weights")))
    with pytest.raises(TaskFailed, match="the trained model is not a numpyhelper npz file"):
        await trainer.train(_global(tmp_path), tmp_path / "out.npz", {})
    assert not (tmp_path / "out.npz").exists() and not (tmp_path / RECORD).exists()


async def test_forward_is_refused_and_the_rest_passes_through(tmp_path: Path) -> None:
    inner = NpzTrainer()
    trainer, _ = _private(tmp_path, inner)
    with pytest.raises(TaskFailed, match="refuses split-learning forward passes"):
        await trainer.forward("cid", tmp_path / "emb", False)
    assert await trainer.validate(tmp_path / "m", tmp_path / "j") == {"accuracy": 0.5}
    assert await trainer.predict(tmp_path / "m", tmp_path / "j") == {"predictions": [1]}
    await trainer.backward(tmp_path / "g", "cid")
    await trainer.startup()
    assert inner.calls == ["validate", "predict", "backward", "startup"]


# ------------------------------------------------------------ in a client --

COMBINER = CombinerAddress("127.0.0.1", 12080)
MANIFEST = {"entry_points": {"train": {"command": "python train.py"}}}


def _lifecycle(tmp_path: Path, helper: str, **section: Any) -> tuple[Lifecycle, InMemoryCombiner]:
    archive = tmp_path / "package.json"
    archive.write_text(json.dumps({"client/fedn.yaml": json.dumps(MANIFEST)}))
    combiner = InMemoryCombiner()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{str(i): a for i, a in enumerate(GLOBAL)})
    combiner.models["seed"] = buffer.getvalue()
    budget = _budget(tmp_path, **section)
    inner = NpzTrainer()
    life = client_graph_lifecycle(  # the container's graph of one client, over these ports
        credentials=Credentials(None),
        plan=ClientPlan(identity=Identity("site", "cid"), work_dir=tmp_path / "work"),
        discovery=InMemoryDiscovery(
            Assignment(AssignmentStatus.ASSIGNED, combiner=COMBINER, client_id="cid", helper_type=helper)
        ),
        package_source=InMemoryPackageSource(archive, hashlib.sha256(archive.read_bytes()).hexdigest()),
        unpacker=InMemoryUnpacker(),
        connector=InMemoryConnector(combiner),
        trainer_factory=PrivateTrainerFactory(lambda d, m: inner, budget.policy, budget, make_generator(3)),
        clock=FakeClock(),
        package_cache=DiskPackageCache(),
        outbox_store=ProcessOutboxStore(tmp_path / "work" / "outbox"),
        scratch=FakeScratch(),
        ids=CountingIds(),
        random=SeededRandom(),
    )
    return life, combiner


def _task(kind: TaskKind, corr: str) -> Task:
    config = {"round_id": corr, "session_id": "s1"}
    return task_of(kind, "seed", "s1", corr, json.dumps(config), "combiner")


async def _serve(life: Lifecycle, combiner: InMemoryCombiner, tasks: list[Task]) -> None:
    """One task after the other (queued together, an older round's training would be dropped)."""
    stop = asyncio.Event()
    runner = asyncio.create_task(life.run(stop))
    try:
        async with asyncio.timeout(20):
            for done, task in enumerate(tasks):
                combiner.submit("cid", task)
                while life.runner is None or len(life.runner.outcomes) <= done:
                    assert not runner.done(), runner.exception() if runner.done() else None
                    await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)


async def test_past_the_budget_the_combiner_gets_an_error_and_no_update_and_validation_goes_on(
    tmp_path: Path,
) -> None:
    life, combiner = _lifecycle(tmp_path, "numpyhelper", epsilon_budget=5)
    tasks = [
        _task(TaskKind.TRAIN, "1"),
        _task(TaskKind.TRAIN, "2"),
        _task(TaskKind.VALIDATE, "3"),
        _task(TaskKind.PREDICT, "4"),
    ]
    await _serve(life, combiner, tasks)
    [update] = combiner.updates  # round 1 only
    (tmp_path / "update.npz").write_bytes(combiner.models[update.model_update_id])
    released = model_npz.load_arrays(tmp_path / "update.npz")
    assert l2_norm([r - g for r, g in zip(released, GLOBAL, strict=True)]) > CLIP, (
        "noised: beyond the clip alone"
    )
    errors = [s for s in lines(combiner.statuses) if s.level is StatusLevel.ERROR]
    [error] = errors
    assert error.text.startswith("train task for model seed failed: privacy budget exhausted: ")
    assert "privacy.epsilon_budget" in error.text and error.correlation_id == "2"
    texts = {s.text for s in lines(combiner.statuses)}
    assert {UPDATE_DONE, VALIDATION_DONE, PREDICTION_DONE} <= texts
    assert len(combiner.validations) == 1 and len(combiner.predictions) == 1


async def test_the_helper_chosen_by_the_controller_reaches_the_guard(tmp_path: Path) -> None:
    life, combiner = _lifecycle(tmp_path, "androidhelper")
    await _serve(life, combiner, [_task(TaskKind.TRAIN, "1")])
    assert not combiner.updates
    [error] = [s for s in lines(combiner.statuses) if s.level is StatusLevel.ERROR]
    assert "helper_type is 'androidhelper'" in error.text and "no update is released" in error.text


# ------------------------------------------------------------- container --


def _policy(tmp_path: Path, **section: Any) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(json.dumps({"privacy": {**SECTION, **section}}))
    return path


async def test_the_container_wraps_in_process_callbacks_with_a_seeded_generator(
    tmp_path: Path, no_fedn_env: None
) -> None:
    def train(model: list[np.ndarray], settings: dict[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
        return [m + s for m, s in zip(model, STEP, strict=True)], {"num_examples": 3}

    settings = load_settings({"policy_file": _policy(tmp_path), "work_dir": tmp_path / "work"})
    outs = []
    for _ in range(2):
        container = build_container(settings, callbacks=Callbacks(train=train, models="numpy"))
        container.noise_seed.override(providers.Object(11))
        trainer = container.trainer_factory()(tmp_path, Manifest({}))
        assert isinstance(trainer, PrivateTrainer)
        out = tmp_path / f"out-{len(outs)}.npz"
        await trainer.train(_global(tmp_path), out, {})
        outs.append(model_npz.load_arrays(out))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)  # the same seed, the same noise: tests are deterministic
    assert json.loads((tmp_path / "work" / RECORD).read_text())["rounds"][0]["count"] == 2


def test_without_a_privacy_section_the_trainer_is_untouched(tmp_path: Path, no_fedn_env: None) -> None:
    settings = load_settings({"work_dir": tmp_path / "work"})
    factory = build_container(settings).trainer_factory()
    assert not isinstance(factory, PrivateTrainerFactory)


class _Without:
    """An import hook that hides a module, as an install without the privacy extra would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == self.name:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_a_privacy_section_without_the_extra_is_one_line_naming_it(
    tmp_path: Path,
    no_fedn_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_root_logger: None,
) -> None:
    from fedclient.app.cli import main

    policy = _policy(tmp_path)
    monkeypatch.setattr(sys, "meta_path", [_Without("dp_accounting"), *sys.meta_path])
    for name in [m for m in sys.modules if m.split(".")[0] == "dp_accounting"]:
        monkeypatch.delitem(sys.modules, name)
    settings = load_settings({"policy_file": policy, "work_dir": tmp_path / "work"})
    with pytest.raises(MissingExtra) as missing:
        build_container(settings).trainer_factory()
    assert str(missing.value) == (
        f"{policy}: the privacy section needs the 'privacy' extra (dp_accounting is not installed): "
        "pip install 'fedclient[privacy]'"
    )
    assert main(["policy", "show", "--policy-file", str(policy), "--work-dir", str(tmp_path / "work")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"fedclient: error: {missing.value}"
