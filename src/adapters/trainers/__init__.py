"""Trainers: how a compute package's code is run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ...domain.package import Manifest
from ...domain.policy import ResourceLimits
from ...domain.ports import TrainerFactory
from .subprocess_trainer import SubprocessTrainer

__all__ = ["SubprocessTrainer", "subprocess_trainer_factory"]


def subprocess_trainer_factory(
    timeout: float = 3600.0,
    extra_env: Mapping[str, str] | None = None,
    limits: ResourceLimits | None = None,
) -> TrainerFactory:
    """A ``TrainerFactory``: the lifecycle learns the package directory only after unpacking."""
    env = dict(extra_env or {})

    def build(package_dir: Path, manifest: Manifest) -> SubprocessTrainer:
        return SubprocessTrainer(package_dir, manifest, timeout=timeout, extra_env=env, limits=limits)

    return build
