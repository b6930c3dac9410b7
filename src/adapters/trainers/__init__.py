"""Trainers: how a compute package's code is run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...domain.package import Manifest
from ...domain.policy import ResourceLimits
from ...domain.wording import SettingNames, field_names
from .child_process import ChildRegistry
from .package_env import PackageEnvs
from .subprocess_trainer import SubprocessTrainer

__all__ = [
    "PID_FILE",
    "ChildRegistry",
    "PackageEnvs",
    "SubprocessTrainer",
    "SubprocessTrainerFactory",
    "subprocess_trainer_factory",
]

PID_FILE = "children.json"


@dataclass
class SubprocessTrainerFactory:
    """A ``TrainerFactory`` that can also sweep what an earlier run left (``domain.ports.LeftoverSweeper``).

    Built by ``subprocess_trainer_factory``; each field is passed on to every trainer.
    """

    registry: ChildRegistry | None = None
    timeout: float = 3600.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None
    envs: PackageEnvs | None = None
    limits: ResourceLimits | None = None
    read_only: bool = False
    read_only_root: Path | None = None
    setting_names: SettingNames = field_names  # how its log lines name a setting (the app's spelling)
    _swept: bool = field(default=False, init=False)

    def sweep(self) -> None:
        """Kill the entry-point groups an earlier run recorded (if still ours): once, before any starts.

        Only once: after that the pid file lists this run's own children.
        """
        if self.registry is not None and not self._swept:
            self._swept = True
            self.registry.sweep()

    def __call__(self, package_dir: Path, manifest: Manifest) -> SubprocessTrainer:
        self.sweep()  # for a caller that did not sweep first: still before this run's first child
        return SubprocessTrainer(
            package_dir,
            manifest,
            timeout=self.timeout,
            extra_env=self.extra_env,
            python=self.python,
            envs=self.envs,
            limits=self.limits,
            registry=self.registry,
            read_only=self.read_only,
            read_only_root=self.read_only_root,
            setting_names=self.setting_names,
        )


def subprocess_trainer_factory(
    timeout: float = 3600.0,
    extra_env: Mapping[str, str] | None = None,
    python: str | None = None,
    envs_dir: Path | None = None,
    limits: ResourceLimits | None = None,
    pid_file: Path | None = None,
    read_only_package: bool = False,
    read_only_root: Path | None = None,
    setting_names: SettingNames = field_names,
) -> SubprocessTrainerFactory:
    """A ``TrainerFactory``: the lifecycle learns the package directory only after unpacking.

    ``python`` overrides the package's interpreter; ``envs_dir`` is where python_envs are
    built and cached (None: python_env is not built, as with --no-managed-env). With
    ``pid_file``, leftovers recorded there by an earlier run are swept (killed if still
    ours) once: by the lifecycle at start, before the package is unpacked (after a SIGKILL
    the old entry points may still run in the package extract dir), or at the latest when
    the trainer is built, before any entry point of this run starts.
    ``read_only_package``: entry points see their package directory as a read-only mount
    (the whole of ``read_only_root``, the package extract dir, when it holds that directory).
    ``setting_names``: how the trainers' log lines name a setting (the app's flags).
    """
    return SubprocessTrainerFactory(
        registry=ChildRegistry(pid_file) if pid_file is not None else None,
        timeout=timeout,
        extra_env=dict(extra_env or {}),
        python=python,
        envs=PackageEnvs(envs_dir) if envs_dir is not None else None,
        limits=limits,
        read_only=read_only_package,
        read_only_root=read_only_root,
        setting_names=setting_names,
    )
