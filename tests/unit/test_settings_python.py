"""--python / FEDN_PYTHON / client.yaml `python`, and --no-managed-env, reach the trainer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from fedclient.adapters.trainers import SubprocessTrainer
from fedclient.app.cli import _loaded_from, parser
from fedclient.app.container import build_container
from fedclient.app.settings_load import load_settings
from fedclient.domain.package import Manifest

pytestmark = pytest.mark.usefixtures("no_fedn_env")


def _run_args(*flags: str) -> list[str]:
    return ["run", "--api-url", "http://127.0.0.1:1", *flags]


def test_flags_set_the_interpreter_and_turn_the_managed_env_off() -> None:
    settings = _loaded_from(
        parser().parse_args(_run_args("--python", "/opt/ml/bin/python", "--no-managed-env"))
    ).settings
    assert settings.python == "/opt/ml/bin/python" and settings.managed_env is False
    defaults = _loaded_from(parser().parse_args(_run_args())).settings
    assert defaults.python is None and defaults.managed_env is True


def test_environment_and_client_yaml_set_them_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init = tmp_path / "client.yaml"
    init.write_text("python: /from/file/python\nmanaged_env: false\n")
    from_file = load_settings({}, init)
    assert (from_file.python, from_file.managed_env) == ("/from/file/python", False)
    monkeypatch.setenv("FEDN_PYTHON", "/from/env/python")
    assert load_settings({}, init).python == "/from/env/python"  # env beats the file
    assert load_settings({"python": "/flag"}, init).python == "/flag"  # the flag beats both


def test_container_builds_a_trainer_with_the_override_and_the_env_cache(tmp_path: Path) -> None:
    manifest = Manifest(entry_points={"train": ("python", "t.py")}, python_env="env.yaml")
    settings = load_settings(
        {"api_url": "http://127.0.0.1:1", "work_dir": tmp_path / "w", "python": sys.executable}
    )
    trainer = build_container(settings).trainer_factory()(tmp_path, manifest)
    assert isinstance(trainer, SubprocessTrainer)
    assert trainer.command("train")[0] == os.path.abspath(sys.executable)
    assert trainer._envs is not None and trainer._envs.root == (tmp_path / "w").resolve() / "envs"
    off = load_settings({"api_url": "http://127.0.0.1:1", "managed_env": False})
    assert build_container(off).trainer_factory()(tmp_path, manifest)._envs is None
