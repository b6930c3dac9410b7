"""The digits example package: its scripts follow FEDn's conventions and actually learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fedclient.adapters.package_archive import TarPackageUnpacker
from fedclient.adapters.package_build import build_package
from fedclient.adapters.trainers import SubprocessTrainer

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits"


def run(script: str, *args: Path, **env: str) -> None:
    subprocess.run(
        [sys.executable, script, *map(str, args)],
        cwd=EXAMPLE,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_build_train_validate_predict(tmp_path: Path) -> None:
    seed, trained = tmp_path / "seed.npz", tmp_path / "trained.npz"
    run("build.py", seed)
    with np.load(seed) as npz:
        assert sorted(npz.files) == ["0", "1"]  # numpyhelper layout
        assert npz["0"].shape == (64, 10) and npz["1"].shape == (10,)

    run("train.py", seed, trained)
    metadata = json.loads((tmp_path / "trained.npz-metadata").read_text())
    assert set(metadata) == {"num_examples", "batch_size", "epochs", "lr"}
    assert metadata["num_examples"] > 1000

    metrics_file = tmp_path / "metrics"  # no suffix, as FEDn's temp files have none
    run("validate.py", trained, metrics_file)
    metrics = json.loads(metrics_file.read_text())
    assert set(metrics) == {"training_loss", "training_accuracy", "test_loss", "test_accuracy"}
    assert metrics["test_accuracy"] > 0.5

    run("predict.py", trained, tmp_path / "prediction")
    prediction = json.loads((tmp_path / "prediction").read_text())
    assert len(prediction["predictions"]) == 20 and prediction["num_predictions"] > 300


def test_model_written_to_a_name_without_npz_suffix_keeps_its_name(tmp_path: Path) -> None:
    run("build.py", tmp_path / "seed")
    assert (tmp_path / "seed").is_file() and not (tmp_path / "seed.npz").exists()


def test_client_settings_override_the_defaults(tmp_path: Path) -> None:
    run("build.py", tmp_path / "seed.npz")
    (tmp_path / "seed.npz-metadata").write_text(json.dumps({"learning_rate": "0.05", "epochs": "2"}))
    run("train.py", tmp_path / "seed.npz", tmp_path / "out.npz")
    metadata = json.loads((tmp_path / "out.npz-metadata").read_text())
    assert metadata["lr"] == 0.05 and metadata["epochs"] == 2


async def test_packaged_example_federates_two_shards(tmp_path: Path) -> None:
    """Package, unpack and run it as fedclient would; FedAvg of the two shards beats chance."""
    unpacker = TarPackageUnpacker()
    package_dir = unpacker.unpack(build_package(EXAMPLE, tmp_path / "digits.tgz"), tmp_path / "package")
    manifest = unpacker.load_manifest(package_dir)
    run("build.py", tmp_path / "seed.npz")
    updates = []
    for index in (0, 1):
        env = {"FEDN_CLIENT_INDEX": str(index), "FEDN_NUM_CLIENTS": "2"}
        trainer = SubprocessTrainer(package_dir, manifest, timeout=60, extra_env=env)
        out = tmp_path / f"client{index}.npz"
        metadata = await trainer.train(tmp_path / "seed.npz", out, {})
        with np.load(out) as npz:
            updates.append((metadata["num_examples"], [npz["0"], npz["1"]]))
    total = sum(n for n, _ in updates)
    assert total == 1438  # the shards partition the training split
    average = [sum(n * params[i] for n, params in updates) / total for i in (0, 1)]
    with open(tmp_path / "global.npz", "wb") as f:
        np.savez_compressed(f, **{"0": average[0], "1": average[1]})
    metrics = await SubprocessTrainer(package_dir, manifest).validate(tmp_path / "global.npz", tmp_path / "m")
    assert metrics["test_accuracy"] > 0.5
