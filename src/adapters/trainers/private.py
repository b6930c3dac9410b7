"""The site's privacy policy around whatever trainer runs the package: what leaves is clipped and noised.

``PrivateTrainer`` decorates the trainer the container builds (the package runner or the
in-process callbacks), so no package, setting or round config reaches past it. For each
training task it

1. refuses at once, naming the reason, when the helper's models cannot be read as arrays
   or when one more round would take ε past the budget (``domain.privacy``);
2. lets the inner trainer write its model beside the real output (``trained-<name>``);
3. releases global + clip(trained - global) + noise into the output file, which is the
   file the task runner puts in the outbox, after charging the round to the budget record.

Validation and prediction release no update and pass through; split-learning forward
passes (embeddings, no clipping defined for them) are refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...domain.errors import TaskFailed
from ...domain.model_files import DEFAULT_HELPER
from ...domain.observe import NULL_OBSERVER, Observer
from ...domain.package import Manifest
from ...domain.ports import LeftoverSweeper, PreparedTrainer, Trainer, TrainerFactory
from ...domain.privacy import FORWARD_REFUSAL, PrivacyBudget, PrivacyPolicy, privacy_refusal
from ...domain.task_context import current_task
from .. import model_npz
from ..dp_mechanism import Released, privatize

log = logging.getLogger("fedclient.privacy")


class PrivateTrainer:
    """A ``Trainer`` whose every released update went through the site's Gaussian mechanism."""

    def __init__(
        self,
        inner: Trainer,
        policy: PrivacyPolicy,
        budget: PrivacyBudget,
        rng: Any,
        observer: Observer = NULL_OBSERVER,
        helper_type: str = DEFAULT_HELPER,
    ) -> None:
        self.inner = inner
        self._policy = policy
        self._budget = budget
        self._rng = rng
        self._observer = observer
        self._helper = helper_type

    def use_helper(self, helper_type: str) -> None:
        self._helper = helper_type

    async def prepare(self) -> None:
        if isinstance(self.inner, PreparedTrainer):
            await self.inner.prepare()

    async def startup(self) -> None:
        await self.inner.startup()

    async def train(
        self, in_model: Path, out_model: Path, client_settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        refusal = privacy_refusal(self._helper)
        if refusal is not None:
            raise TaskFailed(refusal)
        # BudgetExhausted before the package spends any time on it (the accountant runs off the loop)
        await asyncio.to_thread(self._budget.admit)
        trained = out_model.with_name(f"trained-{out_model.name}")
        try:
            metadata = await self.inner.train(in_model, trained, client_settings)
            released = await asyncio.to_thread(self._release, in_model, trained)
        finally:
            trained.unlink(missing_ok=True)
        spent = await asyncio.to_thread(self._budget.charge)  # before anything is written for the outbox
        try:
            await asyncio.to_thread(model_npz.save_arrays, released.arrays, out_model)
        except OSError as exc:
            raise TaskFailed(f"cannot write the privatized model to {out_model}: {exc}") from None
        self._observer.privacy_spent(spent)
        task = current_task()
        round_id = (task.task.round_id if task is not None else "") or "?"
        log.info(
            "privacy: round %s update %s (norm %.4g, bound %g), noise σ=%.4g; %s",
            round_id,
            "clipped" if released.clipped else "within the bound",
            released.norm,
            self._policy.clipping_norm,
            self._policy.noise_stddev,
            spent.describe(),
        )
        return metadata

    def _release(self, in_model: Path, trained: Path) -> Released:
        global_arrays = _arrays(in_model, "the global model")
        trained_arrays = _arrays(trained, "the trained model")
        return privatize(
            global_arrays, trained_arrays, self._policy.clipping_norm, self._policy.noise_stddev, self._rng
        )

    async def validate(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        """Validation releases metrics, not an update: not covered by the privacy policy (docs/PRIVACY.md)."""
        return await self.inner.validate(in_model, out_json)

    async def predict(self, in_model: Path, out_json: Path) -> dict[str, Any]:
        return await self.inner.predict(in_model, out_json)

    async def forward(self, client_id: str, out_embeddings: Path, sl_inference: bool) -> dict[str, Any]:
        raise TaskFailed(FORWARD_REFUSAL)

    async def backward(self, in_gradients: Path, client_id: str) -> None:
        await self.inner.backward(in_gradients, client_id)


def _arrays(path: Path, what: str) -> list[Any]:
    try:
        return model_npz.load_arrays(path)
    except Exception as exc:  # not an npz at all, a truncated zip, members not named 0, 1, …
        raise TaskFailed(
            f"{what} is not a numpyhelper npz file ({exc}); the site policy's privacy section "
            "releases no update it cannot clip"
        ) from None


class PrivateTrainerFactory:
    """Wraps every trainer ``inner`` builds in a ``PrivateTrainer`` sharing one budget and one generator."""

    def __init__(
        self,
        inner: TrainerFactory,
        policy: PrivacyPolicy,
        budget: PrivacyBudget,
        rng: Any,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.budget = budget
        self._rng = rng
        self._observer = observer
        observer.privacy_spent(budget.spent())  # what a restart carried over is on /metrics at once

    def sweep(self) -> None:
        if isinstance(self.inner, LeftoverSweeper):
            self.inner.sweep()

    def __call__(self, package_dir: Path, manifest: Manifest) -> PrivateTrainer:
        return PrivateTrainer(
            self.inner(package_dir, manifest), self.policy, self.budget, self._rng, self._observer
        )
