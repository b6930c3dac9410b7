"""The site's privacy rules: what a training update may reveal, and how much of the budget is left.

The data owner's policy file may hold a ``privacy`` section (docs/PRIVACY.md). Then every
update this site releases is the global model plus a clipped, noised delta: the delta
(trained model minus the global model it was trained from) is scaled down to at most
``clipping_norm`` in L2 norm over all arrays together, and Gaussian noise of standard
deviation ``noise_multiplier * clipping_norm`` is added to every value. Each release is
one Gaussian mechanism with sensitivity ``clipping_norm``; the rounds this site took part
in are composed by an accountant (the ``PrivacyAccountant`` port, a maintained library
behind it) into one (ε, δ), kept in the work dir, and a round that would take ε past
the budget is refused before the package even trains.

Only the pure rules live here: parsing the section, the per-round mechanism, the record
of released rounds, and the decision whether one more round may run. The arithmetic on
arrays and the accounting itself are adapters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import ConfigError, TaskFailed
from .model_files import DEFAULT_HELPER
from .read_number import as_number

if TYPE_CHECKING:
    from .ports import TextRecord

RECORD = "privacy.json"  # in the work dir: the rounds this site released under privacy
PRIVACY_KEYS = ("clipping_norm", "noise_multiplier", "epsilon_per_round", "delta", "epsilon_budget")
# The helper whose models fedclient reads as arrays (FEDn's numpyhelper npz layout).
ARRAY_HELPER = DEFAULT_HELPER


@dataclass(frozen=True)
class GaussianRounds:
    """``count`` releases of the Gaussian mechanism with this noise multiplier (σ / sensitivity)."""

    noise_multiplier: float
    count: int


class PrivacyAccountant(Protocol):
    """Composes released rounds into one ε (a maintained accountant library behind it, never our own)."""

    def epsilon(self, rounds: Sequence[GaussianRounds], delta: float) -> float:
        """The ε of all of ``rounds`` together at ``delta``."""
        ...


@dataclass(frozen=True)
class PrivacyPolicy:
    """The ``privacy`` section of the site policy, resolved to one per-round Gaussian mechanism.

    ``noise_multiplier`` is z: the noise's standard deviation is z × ``clipping_norm``. When
    the data owner gave ``epsilon_per_round`` instead, z was calibrated from it and ``delta``
    with the classic bound σ = Δ·√(2 ln(1.25/δ))/ε (the one Flower's LocalDpMod uses).
    ``delta`` and ``epsilon_budget`` are None only for clipping without noise (z = 0).
    """

    clipping_norm: float
    noise_multiplier: float
    delta: float | None = None
    epsilon_budget: float | None = None
    epsilon_per_round: float | None = None

    @property
    def noise_stddev(self) -> float:
        """σ of the Gaussian noise added to every value of the clipped delta."""
        return self.noise_multiplier * self.clipping_norm

    @property
    def noisy(self) -> bool:
        return self.noise_multiplier > 0

    @property
    def per_round(self) -> GaussianRounds:
        """What one released update costs: one Gaussian mechanism with this multiplier."""
        return GaussianRounds(self.noise_multiplier, 1)

    def describe(self) -> list[str]:
        lines = ["privacy (every training update leaves clipped and noised; docs/PRIVACY.md):"]
        lines.append(f"  clipping norm:   {self.clipping_norm:g} (L2 over all arrays of the update)")
        if self.epsilon_per_round is not None:
            lines.append(
                f"  noise:           Gaussian, σ = {self.noise_stddev:.4g} (noise multiplier "
                f"{self.noise_multiplier:.4g}, calibrated from ε = {self.epsilon_per_round:g} per round "
                f"at δ = {self.delta:g})"
            )
        elif self.noisy:
            lines.append(
                f"  noise:           Gaussian, σ = {self.noise_stddev:.4g} "
                f"(noise multiplier {self.noise_multiplier:g})"
            )
        else:
            lines.append(
                "  noise:           none (noise_multiplier 0): clipping only, no differential privacy"
            )
        if self.delta is not None:
            lines.append(f"  δ:               {self.delta:g}")
        if self.epsilon_budget is not None:
            lines.append(
                f"  ε budget:        {self.epsilon_budget:g} (over every round this site takes part in)"
            )
        return lines


def classic_noise_multiplier(epsilon: float, delta: float) -> float:
    """z for one (ε, δ) Gaussian mechanism by the classic bound (Dwork & Roth, Thm A.1; ε < 1)."""
    return math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def parse_privacy(data: object, where: str) -> PrivacyPolicy:
    """The ``privacy`` section of a policy file; ``where`` names it (``site.yaml: privacy``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping with {', '.join(PRIVACY_KEYS)}")
    unknown = [k for k in data if k not in PRIVACY_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(PRIVACY_KEYS)})")
    given = {k: v for k, v in data.items() if v is not None}
    if "clipping_norm" not in given:
        raise ConfigError(f"{where}.clipping_norm: required (the L2 bound on each update, e.g. 1.0)")
    clip = _number(given["clipping_norm"], f"{where}.clipping_norm", minimum=0.0, open_min=True)
    if "noise_multiplier" in given and "epsilon_per_round" in given:
        raise ConfigError(f"{where}: give noise_multiplier or epsilon_per_round, not both")
    if "noise_multiplier" not in given and "epsilon_per_round" not in given:
        raise ConfigError(
            f"{where}.noise_multiplier: required (σ / clipping_norm, e.g. 1.0), or give epsilon_per_round"
        )
    delta = None
    if "delta" in given:
        delta = _number(given["delta"], f"{where}.delta", minimum=0.0, open_min=True, below=1.0)
    per_round = None
    if "epsilon_per_round" in given:
        per_round = _number(given["epsilon_per_round"], f"{where}.epsilon_per_round", 0.0, True, below=1.0)
        if delta is None:
            raise ConfigError(f"{where}.delta: required with epsilon_per_round (e.g. 1e-5)")
        z = classic_noise_multiplier(per_round, delta)
    else:
        z = _number(given["noise_multiplier"], f"{where}.noise_multiplier", minimum=0.0)
    budget = None
    if "epsilon_budget" in given:
        budget = _number(given["epsilon_budget"], f"{where}.epsilon_budget", minimum=0.0, open_min=True)
    if z > 0:
        if delta is None:
            raise ConfigError(f"{where}.delta: required with noise (the δ of every (ε, δ), e.g. 1e-5)")
        if budget is None:
            raise ConfigError(
                f"{where}.epsilon_budget: required with noise (the total ε this site may spend)"
            )
    elif budget is not None:
        raise ConfigError(
            f"{where}.epsilon_budget: noise_multiplier 0 (clipping only) gives no differential privacy, "
            "so no budget can be kept: remove epsilon_budget or add noise"
        )
    return PrivacyPolicy(clip, z, delta, budget, per_round)


def _number(
    value: object, what: str, minimum: float, open_min: bool = False, below: float | None = None
) -> float:
    """A finite number ≥ ``minimum`` (> with ``open_min``) and < ``below``; text such as ``1e-5`` too."""
    number = as_number(value, what)
    if not math.isfinite(number) or number < minimum or (open_min and number == minimum):
        bound = f"more than {minimum:g}" if open_min else f"at least {minimum:g}"
        raise ConfigError(f"{what}: must be a finite number {bound}, got {value!r}")
    if below is not None and number >= below:
        if what.endswith("epsilon_per_round"):
            raise ConfigError(
                f"{what}: must be below 1, got {value!r} (the classic Gaussian calibration holds for ε < 1 "
                "only; for more ε per round give noise_multiplier instead)"
            )
        raise ConfigError(f"{what}: must be below {below:g}, got {value!r}")
    return number


def privacy_refusal(helper_type: str) -> str | None:
    """Why no update can be released under the privacy policy with this helper, or None if one can."""
    if helper_type == ARRAY_HELPER:
        return None
    return (
        f"the site policy's privacy section needs {ARRAY_HELPER} models (arrays fedclient clips and "
        f"noises); this federation's helper_type is '{helper_type}', whose models fedclient cannot "
        "read as arrays, so no update is released"
    )


FORWARD_REFUSAL = (
    "the site policy's privacy section refuses split-learning forward passes: the embeddings "
    "would leave the site without the clipping and noise that protect model updates"
)


# ------------------------------------------------------------------ the record --


@dataclass(frozen=True)
class PrivacyLedger:
    """Every round this site released an update in under the privacy policy, by noise multiplier."""

    rounds: tuple[GaussianRounds, ...] = ()

    @property
    def count(self) -> int:
        return sum(r.count for r in self.rounds)

    def with_round(self, per_round: GaussianRounds) -> PrivacyLedger:
        rounds = list(self.rounds)
        if rounds and rounds[-1].noise_multiplier == per_round.noise_multiplier:
            rounds[-1] = GaussianRounds(per_round.noise_multiplier, rounds[-1].count + per_round.count)
        else:
            rounds.append(per_round)
        return PrivacyLedger(tuple(rounds))

    def to_json(self) -> str:
        rounds = [{"noise_multiplier": r.noise_multiplier, "count": r.count} for r in self.rounds]
        return json.dumps({"version": 1, "mechanism": "gaussian", "rounds": rounds}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> PrivacyLedger:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where} is not valid JSON ({exc})") from None
        rounds = data.get("rounds") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(rounds, list):
            raise ConfigError(f"{where} is not a privacy record (version 1 with a list of rounds)")
        out = []
        for entry in rounds:
            z = entry.get("noise_multiplier") if isinstance(entry, dict) else None
            count = entry.get("count") if isinstance(entry, dict) else None
            if (
                isinstance(z, bool)
                or not isinstance(z, (int, float))
                or not math.isfinite(z)
                or z < 0
                or isinstance(count, bool)
                or not isinstance(count, int)
                or count < 1
            ):
                raise ConfigError(f"{where}: a round entry is malformed: {entry!r}")
            out.append(GaussianRounds(float(z), count))
        return cls(tuple(out))


@dataclass(frozen=True)
class PrivacySpent:
    """Where the budget stands: ε spent (δ fixed by the policy), over how many released rounds."""

    epsilon: float
    budget: float | None
    delta: float | None
    rounds: int

    def describe(self) -> str:
        spent = _eps(self.epsilon)
        of = f" of budget {self.budget:g}" if self.budget is not None else " (no budget: clipping only)"
        at = f" at δ = {self.delta:g}" if self.delta is not None else ""
        return f"ε spent {spent}{of}{at} after {self.rounds} round{'s' if self.rounds != 1 else ''}"


class BudgetExhausted(TaskFailed):
    """One more released update would take this site's ε past its budget."""


class PrivacyBudget:
    """The ε this site has spent, kept in ``record`` (the work dir), and the rule that admits a round.

    The record lists the rounds released, not an ε: the ε is always the accountant's
    composition of them, at the policy's δ. A round is charged (the record replaced
    atomically and fsynced) *before* its update is written for the outbox, so a crash can
    only over-count. A missing record is a site that has released nothing; an unreadable
    one stops the client (ConfigError) rather than start again from zero.
    """

    def __init__(self, policy: PrivacyPolicy, record: TextRecord, accountant: PrivacyAccountant) -> None:
        self.policy = policy
        self.record = record
        self._accountant = accountant
        self.ledger = self._load()

    def _load(self) -> PrivacyLedger:
        try:
            text = self.record.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the privacy record {self.record.where} cannot be read: {exc}") from None
        if text is None:
            return PrivacyLedger()
        return PrivacyLedger.from_json(text, f"the privacy record {self.record.where}")

    def epsilon(self, ledger: PrivacyLedger) -> float:
        """The composed ε of ``ledger`` at the policy's δ (∞ once any round went out without noise)."""
        if ledger.count == 0:
            return 0.0
        if any(r.noise_multiplier == 0 for r in ledger.rounds) or self.policy.delta is None:
            return math.inf
        return self._accountant.epsilon(ledger.rounds, self.policy.delta)

    def spent(self) -> PrivacySpent:
        return self._spent(self.ledger)

    def _spent(self, ledger: PrivacyLedger) -> PrivacySpent:
        return PrivacySpent(self.epsilon(ledger), self.policy.epsilon_budget, self.policy.delta, ledger.count)

    def admit(self) -> PrivacySpent:
        """Where the budget would stand after one more round; BudgetExhausted if past the budget."""
        after = self._spent(self.ledger.with_round(self.policy.per_round))
        budget = self.policy.epsilon_budget
        if budget is not None and not after.epsilon <= budget:
            now = self.spent()
            rounds = f"{now.rounds} round{'' if now.rounds == 1 else 's'}"
            raise BudgetExhausted(
                f"privacy budget exhausted: this site has spent ε = {_eps(now.epsilon)} of its budget "
                f"ε = {budget:g} (δ = {self.policy.delta:g}) in {rounds}, and one more round "
                f"would bring it to ε = {_eps(after.epsilon)}; the site policy's privacy.epsilon_budget "
                "refuses training (validation and prediction are still served)"
            )
        return after

    def charge(self) -> PrivacySpent:
        """Record one more released round (checked against the budget first); return where it stands."""
        after = self.admit()
        ledger = self.ledger.with_round(self.policy.per_round)
        try:
            self.record.replace(ledger.to_json())
        except OSError as exc:
            raise TaskFailed(
                f"the privacy record {self.record.where} cannot be written ({exc}); no update released"
            ) from None
        self.ledger = ledger
        return after

    def rounds_left(self, ledger: PrivacyLedger | None = None, limit: int = 1_000_000) -> int | None:
        """How many more rounds the budget admits after ``ledger`` (default: the record).

        None: more than ``limit`` (or no budget at all).
        """
        budget = self.policy.epsilon_budget
        if budget is None:
            return None
        base = self.ledger if ledger is None else ledger

        def fits(k: int) -> bool:
            more = PrivacyLedger((*base.rounds, GaussianRounds(self.policy.noise_multiplier, k)))
            return k == 0 or self.epsilon(more) <= budget

        if fits(limit):
            return None
        low, high = 0, 1
        while fits(high):
            low, high = high, high * 2
        while high - low > 1:  # fits(low), not fits(high)
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        return low


def _eps(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.4g}"
