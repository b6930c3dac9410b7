"""Plot bench/transfer.py's JSON: throughput and peak RSS against model size, fedclient vs stock.

python bench/plot.py results.json docs/transfer.png
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {"fedclient": ("tab:blue", "o"), "stock": ("tab:orange", "s"), "ceiling": ("tab:gray", "^")}


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    server = sys.argv[3] if len(sys.argv) > 3 else "fedn-0.33"
    entries = [e for e in data["summary"] if e["server"] == server]
    sizes = [e["mib"] for e in entries]
    fig, (up, down, rss) = plt.subplots(1, 3, figsize=(13, 4))
    for kind, (color, marker) in STYLE.items():
        have = [e for e in entries if kind in e]
        if not have:
            continue
        x = [e["mib"] for e in have]
        for ax, key in ((up, "up"), (down, "down")):
            med = [statistics.median(e[kind][key]) for e in have]
            lo = [med[i] - min(e[kind][key]) for i, e in enumerate(have)]
            hi = [max(e[kind][key]) - med[i] for i, e in enumerate(have)]
            ax.errorbar(x, med, yerr=[lo, hi], color=color, marker=marker, label=kind, capsize=3)
        if kind != "ceiling":
            rss.plot(
                x, [statistics.median(e[kind]["rss"]) for e in have], color=color, marker=marker, label=kind
            )
    for ax, title in ((up, "upload MiB/s"), (down, "download MiB/s"), (rss, "client peak RSS, MiB")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("model size, MiB")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    rss.set_yscale("log")
    fig.suptitle(f"model transfers against {server} (median, bars: min-max)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
