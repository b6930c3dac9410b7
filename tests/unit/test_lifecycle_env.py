"""The lifecycle prepares the trainer (builds the package's env) and names model files per helper."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from fedclient.domain.errors import PackageError
from fedclient.domain.model import Task, TaskKind
from fedclient.testing.fakes import InMemoryTrainer

from tests.unit.world import ASSIGNED, World, train_task


class PreparingTrainer(InMemoryTrainer):
    """An in-memory trainer that records prepare() (e.g. a python_env build) like every call."""

    def __init__(self, fail: bool = False, hang: bool = False) -> None:
        super().__init__(num_examples=5)
        self.fail_prepare, self.hang = fail, hang

    async def prepare(self) -> None:
        self.calls.append(("prepare", Path(), {}))
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail_prepare:
            raise PackageError("python_env build failed while installing dependencies (exit 1): boom")


async def test_prepare_runs_once_before_any_task(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, trainer=PreparingTrainer())
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    assert [c[0] for c in w.trainer.calls] == ["prepare", "train"]


async def test_a_failed_prepare_stops_the_client_before_it_connects(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, trainer=PreparingTrainer(fail=True))
    with pytest.raises(PackageError, match="python_env build failed"):
        await asyncio.wait_for(w.life.run(w.stop), 5)
    assert not w.combiner.connects


async def test_stop_during_a_long_prepare_ends_the_client(tmp_path: Path, archive: Path) -> None:
    w = World(tmp_path, archive, trainer=PreparingTrainer(hang=True))
    runner = asyncio.create_task(w.life.run(w.stop))
    while not w.trainer.calls:
        await asyncio.sleep(0.005)
    w.stop.set()
    await asyncio.wait_for(runner, 5)
    assert not w.combiner.connects


@pytest.mark.parametrize(
    ("from_controller", "configured", "name"),
    [
        ("numpyhelper", None, "in.npz"),
        ("binaryhelper", None, "in.npz"),
        ("androidhelper", None, "in"),
        ("androidhelper", "numpyhelper", "in.npz"),  # the client's --helper-type wins, as in FEDn
        ("", None, "in.npz"),  # no helper from the controller: numpyhelper
    ],
)
async def test_model_files_are_named_for_the_helper(
    tmp_path: Path, archive: Path, from_controller: str, configured: str | None, name: str
) -> None:
    answer = replace(ASSIGNED, helper_type=from_controller)
    w = World(tmp_path, archive, answer, helper_type=configured)
    w.combiner.submit("cid-1", train_task())
    await w.run_until(lambda: bool(w.combiner.updates))
    [(kind, in_model, _)] = w.trainer.calls
    assert (kind, in_model.name) == ("train", name)
    assert w.life.helper_type == (configured or from_controller or "numpyhelper")


class OutputNamesTrainer(InMemoryTrainer):
    """Records the JSON output paths the runner hands to validate and predict."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[str] = []

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, object]:
        self.outputs.append(out_json.name)
        return await super().validate(in_model, out_json)

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, object]:
        self.outputs.append(out_json.name)
        return await super().predict(in_model, out_json)


async def test_json_outputs_have_no_suffix_like_the_stock_clients(tmp_path: Path, archive: Path) -> None:
    trainer = OutputNamesTrainer()
    w = World(tmp_path, archive, trainer=trainer)
    for kind, corr in ((TaskKind.VALIDATE, "v1"), (TaskKind.PREDICT, "p1")):
        w.combiner.submit("cid-1", Task(kind, "seed", "s1", corr, "", "combiner-0"))
    await w.run_until(lambda: len(trainer.outputs) == 2 and bool(w.combiner.predictions))
    assert [Path(name).suffix for name in trainer.outputs] == ["", ""], trainer.outputs
