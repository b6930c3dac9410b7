"""The minimal in-process trainer: callbacks imported once, results checked like the subprocess trainer's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedclient.adapters.trainers.inprocess import InProcessTrainer, load_callbacks
from fedclient.domain.errors import ConfigError, TaskFailed


def package(tmp_path: Path, body: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "callbacks.py").write_text(body)
    return tmp_path


async def test_bytes_or_path_models_and_metrics(tmp_path: Path) -> None:
    pkg = package(
        tmp_path / "a",
        "from pathlib import Path\n"
        "CALLS = []\n"
        "def train(model, settings):\n"
        "    CALLS.append(settings)\n"
        "    return Path(model).read_bytes() + b'!', {'num_examples': 3}\n"
        "def validate(model):\n"
        "    return {'size': len(Path(model).read_bytes())}\n",
    )
    module = load_callbacks(pkg)
    assert load_callbacks(pkg) is module  # imported once per process
    trainer = InProcessTrainer(module)
    (tmp_path / "in").write_bytes(b"seed")
    meta = await trainer.train(tmp_path / "in", tmp_path / "out", {"lr": "0.1"})
    assert meta == {"num_examples": 3} and (tmp_path / "out").read_bytes() == b"seed!"
    assert module.CALLS == [{"lr": "0.1"}]
    assert await trainer.validate(tmp_path / "out", tmp_path / "m.json") == {"size": 5}
    with pytest.raises(TaskFailed, match="no predict"):
        await trainer.predict(tmp_path / "out", tmp_path / "p.json")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def train(model, settings):\n    return b'x'\n", "must return \\(model, metadata\\)"),
        ("def train(model, settings):\n    return b'x', {}\n", "num_examples"),
        ("def train(model, settings):\n    return 3, {'num_examples': 1}\n", "path or bytes"),
        ("def train(model, settings):\n    raise RuntimeError('diverged')\n", "RuntimeError: diverged"),
    ],
)
async def test_bad_results_fail_the_task(tmp_path: Path, body: str, message: str) -> None:
    trainer = InProcessTrainer(load_callbacks(package(tmp_path / "p", body)))
    (tmp_path / "in").write_bytes(b"seed")
    with pytest.raises(TaskFailed, match=message):
        await trainer.train(tmp_path / "in", tmp_path / "out", {})


def test_a_module_without_train_or_that_fails_to_import_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no train"):
        load_callbacks(package(tmp_path / "a", "def validate(model):\n    return {}\n"))
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        load_callbacks(package(tmp_path / "b", "1 / 0\n"))
    with pytest.raises(ConfigError, match=r"no callbacks\.py"):
        load_callbacks(tmp_path / "missing")
