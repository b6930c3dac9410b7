"""A package's ``callbacks.py`` on the callback trainer (``fedclient simulate``): loaded once, shared pool."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fedclient.adapters.combiner_grpc.vocabulary import task_of
from fedclient.adapters.trainers.callback_trainer import (
    Callbacks,
    CallbackTrainer,
    callback_trainer_factory,
    load_package_callbacks,
    log_metric,
)
from fedclient.domain.errors import ConfigError, TaskFailed
from fedclient.domain.links import LinkHolder
from fedclient.domain.model import Identity, Task, TaskKind
from fedclient.domain.package import Manifest
from fedclient.testing.fakes import (
    CountingIds,
    FakeClock,
    InMemoryCombiner,
    InMemoryLink,
    SeededRandom,
)

from tests.unit.world import task_runner


def package(tmp_path: Path, body: str, helper: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "callbacks.py").write_text(body)
    if helper:
        (tmp_path / "helper.py").write_text(helper)
    return tmp_path


async def test_a_package_module_is_loaded_once_and_its_callbacks_run(tmp_path: Path) -> None:
    pkg = package(
        tmp_path / "a",
        "from pathlib import Path\n"
        "import helper\n"  # its own helper module, found beside it
        "CALLS = []\n"
        "def train(model, settings):\n"
        "    CALLS.append(settings)\n"
        "    return Path(model).read_bytes() + helper.MARK, {'num_examples': 3}\n"
        "def validate(model):\n"
        "    return {'size': len(Path(model).read_bytes())}\n",
        helper="MARK = b'!'\n",
    )
    callbacks = load_package_callbacks(pkg)
    assert load_package_callbacks(pkg) is callbacks  # imported once per process
    assert callbacks.names() == ["train", "validate"] and callbacks.models == "path"
    trainer = CallbackTrainer(callbacks)
    (tmp_path / "in").write_bytes(b"seed")
    meta = await trainer.train(tmp_path / "in", tmp_path / "out", {"lr": "0.1"})
    assert meta == {"num_examples": 3} and (tmp_path / "out").read_bytes() == b"seed!"
    assert callbacks.train.__globals__["CALLS"] == [{"lr": "0.1"}]  # type: ignore[union-attr]
    assert await trainer.validate(tmp_path / "out", tmp_path / "m.json") == {"size": 5}
    with pytest.raises(TaskFailed, match="no predict callback"):
        await trainer.predict(tmp_path / "out", tmp_path / "p.json")


def test_a_module_without_train_or_that_fails_to_import_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no train"):
        load_package_callbacks(package(tmp_path / "a", "def validate(model):\n    return {}\n"))
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        load_package_callbacks(package(tmp_path / "b", "1 / 0\n"))
    with pytest.raises(ConfigError, match=r"no callbacks\.py"):
        load_package_callbacks(tmp_path / "missing")
    with pytest.raises(ConfigError, match="none of the callbacks"):
        load_package_callbacks(package(tmp_path / "c", "X = 1\n"))


def _train_task(client: int) -> Task:
    data = json.dumps({"round_id": "1", "client_settings": {}})
    return task_of(TaskKind.TRAIN, "seed", "sess", f"corr-{client}", data, "combiner")


async def test_many_clients_share_the_executor_threads_and_keep_their_task_context(tmp_path: Path) -> None:
    """Ten clients, two pool threads: callbacks overlap on the pool, none gets a thread of its own."""
    both_running = threading.Barrier(2, timeout=10)  # only passes if two callbacks run at once
    threads: set[str] = set()

    def train(model: Path, settings: dict[str, object]) -> tuple[bytes, dict[str, int]]:
        threads.add(threading.current_thread().name)
        both_running.wait()
        assert log_metric({"loss": 0.5})  # reaches this client's own combiner link from a pool thread
        return b"new", {"num_examples": 1}

    combiner = InMemoryCombiner()
    combiner.models["seed"] = b"seed"
    with ThreadPoolExecutor(2, thread_name_prefix="pool") as pool:
        factory = callback_trainer_factory(Callbacks(train=train), pool)
        manifest = Manifest(entry_points={})
        runners = []
        for client in range(10):
            links = LinkHolder()
            links.set(InMemoryLink(combiner, Identity(f"site-{client}", f"cid-{client}")))
            trainer = factory(tmp_path, manifest)
            runners.append(
                task_runner(
                    links,
                    trainer,
                    tmp_path / f"t{client}",
                    clock=FakeClock(),
                    ids=CountingIds(f"client-{client}"),
                    random=SeededRandom(client),
                )
            )
        outcomes = await asyncio.gather(*(r.handle(_train_task(i)) for i, r in enumerate(runners)))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert len(threads) == 2 and all(name.startswith("pool") for name in threads)
    assert sorted(u.correlation_id for u in combiner.updates) == sorted(f"corr-{i}" for i in range(10))
    assert len(combiner.metrics) == 10 and {m.model_id for m in combiner.metrics} == {"seed"}
