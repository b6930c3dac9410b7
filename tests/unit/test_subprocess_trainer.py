"""SubprocessTrainer against tiny throwaway packages: real child processes, no shell."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fedclient.adapters.trainers import SubprocessTrainer, subprocess_trainer_factory
from fedclient.domain.errors import TaskFailed
from fedclient.domain.package import Manifest

# One script per behaviour; each entry point in fedn.yaml runs one of them.
SCRIPTS = {
    "ok_train.py": """
        import json, os, sys
        src, dst = sys.argv[1], sys.argv[2]
        settings = json.load(open(src + "-metadata"))
        open(dst, "wb").write(open(src, "rb").read() + b"+trained")
        json.dump({"num_examples": 7, "settings": settings, "cwd": os.getcwd(), "argv": sys.argv[1:],
                   "env": os.environ.get("FEDCLIENT_TEST_VALUE"), "python": sys.executable,
                   "path0": os.environ["PATH"].split(os.pathsep)[0]}, open(dst + "-metadata", "w"))
        print("trained fine")
    """,
    "fail.py": """
        import sys
        print("starting up")
        for i in range(80):
            print(f"noise {i}", file=sys.stderr)
        print("Traceback: boom", file=sys.stderr)
        sys.exit(3)
    """,
    "sleepy.py": """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(sys.argv[2] + ".pids", "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(60)
    """,
    "no_metadata.py": """
        import sys
        open(sys.argv[2], "wb").write(b"model")
    """,
    "bad_metadata.py": """
        import json, sys
        open(sys.argv[2], "wb").write(b"model")
        json.dump({"num_examples": "many"}, open(sys.argv[2] + "-metadata", "w"))
    """,
    "no_model.py": """
        import json, sys
        json.dump({"num_examples": 1}, open(sys.argv[2] + "-metadata", "w"))
    """,
    "metrics.py": """
        import json, sys
        json.dump({"accuracy": 0.5, "model": open(sys.argv[1]).read()}, open(sys.argv[2], "w"))
    """,
    "list_out.py": """
        import json, sys
        json.dump([1, 2, 3], open(sys.argv[2], "w"))
    """,
    "not_json.py": """
        import sys
        open(sys.argv[2], "w").write("accuracy=0.5")
    """,
    "no_output.py": """
        print("forgot to write anything")
    """,
    "suicide.py": """
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    """,
}


def make_package(root: Path, commands: dict[str, str]) -> tuple[Path, Manifest]:
    package = root / "my package"  # a space on purpose: nothing may be shell-split
    package.mkdir()
    for name, body in SCRIPTS.items():
        (package / name).write_text(textwrap.dedent(body))
    return package, Manifest(entry_points={entry: ("python", script) for entry, script in commands.items()})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "task dir"
    path.mkdir()
    (path / "in model.npz").write_bytes(b"seed")
    return path


def trainer(tmp_path: Path, timeout: float = 30.0, **commands: str) -> SubprocessTrainer:
    package, manifest = make_package(tmp_path, commands)
    return SubprocessTrainer(package, manifest, timeout=timeout, extra_env={"FEDCLIENT_TEST_VALUE": "x y"})


async def test_train_runs_in_the_package_with_paths_as_single_arguments(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, train="ok_train.py")
    in_model, out_model = work / "in model.npz", work / "out model.npz"
    metadata = await t.train(in_model, out_model, {"learning_rate": "0.1", "epochs": 2})
    assert metadata["num_examples"] == 7
    assert metadata["settings"] == {"learning_rate": "0.1", "epochs": 2}  # the in-metadata side-file
    assert metadata["argv"] == [str(in_model), str(out_model)]
    assert Path(metadata["cwd"]) == tmp_path / "my package"
    assert metadata["env"] == "x y"
    assert out_model.read_bytes() == b"seed+trained"
    assert not (work / "in model.npz-metadata").exists()  # cleaned up afterwards


async def test_python_is_the_one_path_gives_as_fedns_shell_runs_it(tmp_path: Path, work: Path) -> None:
    # tests/conftest.py puts this venv's bin first on PATH, as an activated venv does.
    t = trainer(tmp_path, train="ok_train.py")
    ours = os.path.join(os.path.dirname(sys.executable), "python")
    assert t.command("train", "a", "b") == [ours, "ok_train.py", "a", "b"]
    metadata = await t.train(work / "in model.npz", work / "out", {})
    assert metadata["path0"] == os.path.dirname(sys.executable)  # PATH passed on unchanged


async def test_output_is_logged_line_by_line_with_the_entry_point(
    tmp_path: Path, work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedclient.trainer")
    await trainer(tmp_path, train="ok_train.py").train(work / "in model.npz", work / "out", {})
    assert "train: trained fine" in caplog.messages


async def test_non_zero_exit_fails_the_task_with_the_stderr_tail(tmp_path: Path, work: Path) -> None:
    with pytest.raises(TaskFailed) as raised:
        await trainer(tmp_path, train="fail.py").train(work / "in model.npz", work / "out", {})
    message = str(raised.value)
    assert "train failed (exit code 3)" in message
    assert message.endswith("Traceback: boom")
    assert "noise 79" in message and "noise 10" not in message  # only the last lines
    assert not (work / "in model.npz-metadata").exists()


async def test_death_by_signal_is_named(tmp_path: Path, work: Path) -> None:
    with pytest.raises(TaskFailed, match="killed by SIGKILL"):
        await trainer(tmp_path, validate="suicide.py").validate(work / "in model.npz", work / "m.json")


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for a parent that is not us."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


async def test_timeout_kills_the_whole_process_group(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, timeout=0.5, train="sleepy.py")
    started = time.monotonic()
    with pytest.raises(TaskFailed, match=r"train timed out after 0\.5 s"):
        await t.train(work / "in model.npz", work / "out", {})
    assert time.monotonic() - started < 10
    pids = [int(p) for p in (work / "out.pids").read_text().split()]
    assert _wait_gone(pids), "the entry point or its child survived the timeout"


async def test_cancelling_the_task_kills_the_process(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, train="sleepy.py")
    run = asyncio.create_task(t.train(work / "in model.npz", work / "out", {}))
    pid_file = work / "out.pids"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert _wait_gone([int(p) for p in pid_file.read_text().split()])


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("no_metadata.py", "did not write the training metadata"),
        ("bad_metadata.py", "needs 'num_examples' as a number >= 0, got 'many'"),
        ("no_model.py", "wrote no model"),
    ],
)
async def test_train_outputs_are_checked(tmp_path: Path, work: Path, script: str, message: str) -> None:
    with pytest.raises(TaskFailed, match=message):
        await trainer(tmp_path, train=script).train(work / "in model.npz", work / "out.npz", {})


async def test_stale_outputs_do_not_count(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, train="no_metadata.py", validate="no_output.py")
    (work / "out.npz").write_bytes(b"old model")
    (work / "out.npz-metadata").write_text('{"num_examples": 1}')
    with pytest.raises(TaskFailed, match="did not write the training metadata"):
        await t.train(work / "in model.npz", work / "out.npz", {})
    (work / "m.json").write_text("{}")
    with pytest.raises(TaskFailed, match="did not write the metrics"):
        await t.validate(work / "in model.npz", work / "m.json")


async def test_validate_and_predict_return_the_json_object(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, validate="metrics.py", predict="metrics.py")
    assert await t.validate(work / "in model.npz", work / "m.json") == {"accuracy": 0.5, "model": "seed"}
    assert (await t.predict(work / "in model.npz", work / "p.json"))["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("list_out.py", "must write the metrics as a JSON object, got list"),
        ("not_json.py", "not valid JSON"),
        ("no_output.py", "did not write the metrics"),
    ],
)
async def test_validate_must_write_a_json_object(
    tmp_path: Path, work: Path, script: str, message: str
) -> None:
    with pytest.raises(TaskFailed, match=message):
        await trainer(tmp_path, validate=script).validate(work / "in model.npz", work / "m.json")


async def test_missing_entry_point_or_program_fails_only_the_task(tmp_path: Path, work: Path) -> None:
    t = trainer(tmp_path, train="ok_train.py")
    with pytest.raises(TaskFailed, match="no 'predict' entry point"):
        await t.predict(work / "in model.npz", work / "p.json")
    manifest = Manifest(entry_points={"validate": ("no-such-program-fedclient", "x")})
    with pytest.raises(TaskFailed, match="cannot start validate"):
        await SubprocessTrainer(tmp_path, manifest).validate(work / "in model.npz", work / "m.json")


async def test_python_env_is_not_built_without_managed_envs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = Manifest(entry_points={"train": ("python", "t.py")}, python_env="python_env.yaml")
    t = SubprocessTrainer(tmp_path, manifest, envs=None)
    await t.prepare()
    assert t.env is None
    assert any("not built (--no-managed-env)" in m for m in caplog.messages)


async def test_factory_builds_a_configured_trainer(tmp_path: Path, work: Path) -> None:
    package, manifest = make_package(tmp_path, {"train": "sleepy.py"})
    t = subprocess_trainer_factory(timeout=0.3, extra_env={"A": "1"})(package, manifest)
    assert isinstance(t, SubprocessTrainer)
    with pytest.raises(TaskFailed, match=r"timed out after 0\.3 s"):
        await t.train(work / "in model.npz", work / "out", {})
