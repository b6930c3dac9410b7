"""The ``PrivacyAccountant`` port over Google's dp-accounting library (its RDP accountant).

Each released round is one Gaussian mechanism (``GaussianDpEvent`` with the round's noise
multiplier; sensitivity 1 in units of the clipping norm); the rounds are composed by
``RdpAccountant`` with its default orders and neighbouring relation (add or remove one),
and ε is read off at the policy's δ. Nothing here computes a bound of its own.

dp-accounting is imported only when an ε is asked for (the ``privacy`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..domain.errors import ConfigError
from ..domain.privacy import GaussianRounds


class RdpAccountant:
    """Composes Gaussian rounds with ``dp_accounting.rdp.RdpAccountant``."""

    def epsilon(self, rounds: Sequence[GaussianRounds], delta: float) -> float:
        try:
            import dp_accounting
            from dp_accounting.rdp import RdpAccountant as Rdp
        except ImportError:
            raise ConfigError(
                "privacy accounting needs dp-accounting: pip install 'fedclient[privacy]'"
            ) from None
        accountant = Rdp()
        for entry in rounds:
            event = dp_accounting.GaussianDpEvent(entry.noise_multiplier)
            accountant.compose(dp_accounting.SelfComposedDpEvent(event, entry.count))
        return float(accountant.get_epsilon(delta))
