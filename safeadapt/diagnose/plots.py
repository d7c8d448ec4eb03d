"""PNG figures of a diagnosis: layer x module heatmaps of the weight deltas (and of the task-vector
cosine in three-model runs), and per-layer line plots of the activation diagnosis. matplotlib
(Agg) is imported only here, only when a figure is drawn."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

from safeadapt.diagnose.modules import MODULE_ORDER


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("->", "_to_")).strip("_")


def heatmap(records: Sequence[dict[str, Any]], pair: str, field: str, path: Path, *, title: str,
            cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> Path | None:
    """Layer (rows, plus one row for tensors outside the decoder layers) x module heatmap of `field`."""
    recs = [r for r in records if r["pair"] == pair and r.get(field) is not None]
    if not recs:
        return None
    mods = [m for m in MODULE_ORDER if any(r["module"] == m for r in recs)]
    layers = sorted({r["layer"] for r in recs if r["layer"] is not None})
    rows = [str(i) for i in layers] + (["outside"] if any(r["layer"] is None for r in recs) else [])
    grid = [[math.nan] * len(mods) for _ in rows]
    for r in recs:
        i = rows.index("outside" if r["layer"] is None else str(r["layer"]))
        grid[i][mods.index(r["module"])] = float(r[field])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(mods), 1.2 + 0.28 * len(rows)))
    im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(mods)), mods, rotation=45, ha="right")
    step = max(1, len(rows) // 24)
    ax.set_yticks(range(0, len(rows), step), rows[::step])
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=field)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def weight_figures(result: dict[str, Any], out: Path) -> list[str]:
    """Heatmaps of rel_change per pair and of cos_tv (three-model runs) into `out`."""
    made = []
    for pair in result["pairs"]:
        p = heatmap(result["per_layer"], pair, "rel_change", out / f"heatmap_rel_change_{slug(pair)}.png",
                    title=f"relative change {pair}  ||B-A||/||A||")
        if p:
            made.append(p.name)
    if len(result["labels"]) == 3:
        a, b, c = result["labels"]
        p = heatmap(result["per_layer"], f"{a}->{c}", "cos_tv", out / "heatmap_cos_tv.png", cmap="RdBu",
                    vmin=-1, vmax=1, title=f"cosine of task vectors ({a}->{b}) vs ({b}->{c})")
        if p:
            made.append(p.name)
    return made


def lines(series: dict[str, Sequence[tuple[int, float | None]]], path: Path, *, title: str, ylabel: str,
          span: tuple[int, int] | None = None) -> Path:
    """One line per series over layers; `span` shades a layer range (e.g. the safety layers)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, pts in series.items():
        xs = [x for x, y in pts if y is not None]
        ys = [y for _, y in pts if y is not None]
        ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if span is not None:
        ax.axvspan(span[0] - 0.4, span[1] + 0.4, alpha=0.15, color="tab:red", label="safety layers")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (hidden-state index)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
