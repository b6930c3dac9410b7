"""Trainers: how a compute package's code is run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...domain.package import Manifest
from ...domain.policy import ResourceLimits
from ...domain.ports import TrainerFactory
from .child_process import ChildRegistry
from .package_env import PackageEnvs
from .subprocess_trainer import SubprocessTrainer

__all__ = ["PID_FILE", "ChildRegistry", "PackageEnvs", "SubprocessTrainer", "subprocess_trainer_factory"]

PID_FILE = "children.json"


def subprocess_trainer_factory(
    timeout: float = 3600.0,
    extra_env: Mapping[str, str] | None = None,
    python: str | None = None,
    envs_dir: Path | None = None,
    limits: ResourceLimits | None = None,
    pid_file: Path | None = None,
    read_only_package: bool = False,
    read_only_root: Path | None = None,
) -> TrainerFactory:
    """A ``TrainerFactory``: the lifecycle learns the package directory only after unpacking.

    ``python`` overrides the package's interpreter; ``envs_dir`` is where python_envs are
    built and cached (None: python_env is not built, as with --no-managed-env). With
    ``pid_file``, leftovers recorded there by an earlier run are swept (killed if still
    ours) when the trainer is built, before any entry point of this run starts.
    ``read_only_package``: entry points see their package directory as a read-only mount
    (the whole of ``read_only_root``, the package extract dir, when it holds that directory).
    """
    env = dict(extra_env or {})
    envs = PackageEnvs(envs_dir) if envs_dir is not None else None
    registry = ChildRegistry(pid_file) if pid_file is not None else None

    def build(package_dir: Path, manifest: Manifest) -> SubprocessTrainer:
        if registry is not None:
            registry.sweep()
        return SubprocessTrainer(
            package_dir,
            manifest,
            timeout=timeout,
            extra_env=env,
            python=python,
            envs=envs,
            limits=limits,
            registry=registry,
            read_only=read_only_package,
            read_only_root=read_only_root,
        )

    return build
