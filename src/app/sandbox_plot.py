"""`fedclient sandbox --plot FILE`: a PNG of the per-round metrics (matplotlib, in the sandbox extra)."""

from __future__ import annotations

from pathlib import Path

from ..adapters.sandbox.federation import RoundResult
from .extras import require_extra


def check_plotting() -> None:
    """Fail before the federation starts, not after it ran, when matplotlib is missing."""
    require_extra("sandbox", "matplotlib")


def plot_rounds(results: list[RoundResult], path: Path) -> None:
    require_extra("sandbox", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot as plt

    rounds = [r.round for r in results]
    keys = sorted({k for r in results for k in r.metrics})
    # Losses and scores live on different scales: one panel each.
    panels = [("loss", [k for k in keys if "loss" in k]), ("score", [k for k in keys if "loss" not in k])]
    panels = [(title, names) for title, names in panels if names] or [("metric", [])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=100, squeeze=False)
    try:
        for ax, (title, names) in zip(axes[0], panels, strict=True):
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
