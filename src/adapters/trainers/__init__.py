"""Trainers: how a compute package's code is run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...domain.package import Manifest
from ...domain.ports import TrainerFactory
from .child_process import ChildRegistry
from .subprocess_trainer import SubprocessTrainer

__all__ = ["PID_FILE", "ChildRegistry", "SubprocessTrainer", "subprocess_trainer_factory"]

PID_FILE = "children.json"


def subprocess_trainer_factory(
    timeout: float = 3600.0,
    extra_env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
) -> TrainerFactory:
    """A ``TrainerFactory``: the lifecycle learns the package directory only after unpacking.

    With ``pid_file``, leftovers recorded there by an earlier run are swept (killed if
    still ours) when the trainer is built, before any entry point of this run starts.
    """
    env = dict(extra_env or {})
    registry = ChildRegistry(pid_file) if pid_file is not None else None

    def build(package_dir: Path, manifest: Manifest) -> SubprocessTrainer:
        if registry is not None:
            registry.sweep()
        return SubprocessTrainer(package_dir, manifest, timeout=timeout, extra_env=env, registry=registry)

    return build
