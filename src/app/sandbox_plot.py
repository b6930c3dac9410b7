"""`fedclient sandbox --plot FILE`: a PNG of the per-round metrics (matplotlib, in the sandbox extra)."""

from __future__ import annotations

from pathlib import Path

from ..adapters.sandbox.federation import RoundResult
from .extras import require_extra


def check_plotting() -> None:
    """Fail before the federation starts, not after it ran, when matplotlib is missing."""
    require_extra("sandbox", "matplotlib")


def plot_rounds(results: list[RoundResult], path: Path, epsilons: list[float] | None = None) -> None:
    """Losses and scores per round; with ``epsilons`` (privacy on) also the scores against ε spent."""
    require_extra("sandbox", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot as plt

    rounds = [r.round for r in results]
    keys = sorted({k for r in results for k in r.metrics})
    # Losses and scores live on different scales: one panel each.
    panels = [("loss", [k for k in keys if "loss" in k]), ("score", [k for k in keys if "loss" not in k])]
    panels = [(title, names) for title, names in panels if names] or [("metric", [])]
    scores = [k for k in keys if "loss" not in k]
    privacy = epsilons is not None and len(epsilons) == len(results) and bool(scores)
    width = len(panels) + (1 if privacy else 0)
    fig, axes = plt.subplots(1, width, figsize=(5 * width, 4), dpi=100, squeeze=False)
    try:
        if privacy and epsilons is not None:
            ax = axes[0][-1]
            for key in scores:
                ax.plot(epsilons, [r.metrics.get(key, float("nan")) for r in results], marker="o", label=key)
            ax.set_xlabel("ε spent (largest of any client)")
            ax.set_ylabel("score (mean over clients)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        for ax, (title, names) in zip(axes[0], panels, strict=False):
            for key in names:
                ax.plot(rounds, [r.metrics.get(key, float("nan")) for r in results], marker="o", label=key)
            ax.set_xlabel("round")
            ax.set_ylabel(f"{title} (mean over clients)")
            ax.set_xticks(rounds)
            ax.grid(alpha=0.3)
            if names:
                ax.legend(fontsize="small")
        fig.suptitle("fedclient sandbox: per-round metrics")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
