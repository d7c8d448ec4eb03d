"""The report's plots in one matplotlib style (colour-blind-safe: Okabe-Ito hues, cividis/viridis
maps, marker shapes so nothing is told by colour alone), each returned as a data-URI SVG: the
trade-off plot and the diagnosis heatmaps / per-layer curves."""

from __future__ import annotations

import base64
import io
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # no display; also set before any pyplot import elsewhere

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#dddddd",
    "grid.linewidth": 0.6, "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO), "legend.frameon": False,
    "legend.fontsize": 8, "svg.fonttype": "none", "svg.hashsalt": "safeadapt-report",
}
MARKERS = {"aligned": "*", "adapted": "o", "safety tuning": "s", "merge:linear": "^", "merge:ties": "v",
           "merge:dare": "D", "merge:slerp": "<", "merge:task_arithmetic": ">"}
_SPARE_MARKERS = ("P", "X", "h", "p", "d", "8", "H")


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # constrained layout already fits the labels
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(w: float, h: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(w, h), layout="constrained")
        FigureCanvasAgg(fig)
    return fig


def _sqrt(x: Any) -> Any:
    import numpy as np

    return np.sign(x) * np.sqrt(np.abs(x))


def _square(x: Any) -> Any:
    import numpy as np

    return np.sign(x) * np.square(x)


def _marker(fam: str, seen: dict[str, str]) -> str:
    if fam in MARKERS:
        return MARKERS[fam]
    if fam not in seen:
        seen[fam] = _SPARE_MARKERS[len(seen) % len(_SPARE_MARKERS)]
    return seen[fam]


def _place_labels(ax: Any, fig: Figure, pts: list[dict[str, Any]], every: list[dict[str, Any]]) -> None:
    """Label `pts` without covering a label or any of `every` point's marker: try offsets around
    each point, keep the first that is free, leave the point unlabelled when none is."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    marks = ax.transData.transform([(p["asr"], p["helpfulness"]) for p in every]) if every else []
    taken = [Bbox.from_extents(x - 5, y - 5, x + 5, y + 5) for x, y in marks]
    offsets = [(6, 4), (6, -10), (-6, 4), (-6, -10), (6, 12), (6, -18), (-6, 12), (-6, -18), (14, -4), (-14, -4)]
    for p in pts:
        for dx, dy in offsets:
            t = ax.annotate(p["label"], (p["asr"], p["helpfulness"]), xytext=(dx, dy), textcoords="offset points",
                            fontsize=7.5, ha="left" if dx > 0 else "right", color="#222222")
            bb = t.get_window_extent(renderer)
            if not any(bb.overlaps(o) for o in taken):
                taken.append(bb)
                break
            t.remove()


def tradeoff_plot(tp: dict[str, Any], *, width: float = 6.4, height: float = 4.3) -> str | None:
    """ASR (x) vs helpfulness (y), over-refusal as colour, one marker shape per method family, the
    non-dominated front joined, the best trade-off ringed."""
    pts = tp["points"]
    if not pts:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(width, height)
        ax = fig.add_subplot()
        if tp.get("trials"):
            ax.scatter([t["asr"] for t in tp["trials"]], [t["helpfulness"] for t in tp["trials"]], s=8, c="#bbbbbb",
                       marker=".", label="search trials", zorder=1)
        front = tp.get("front") or []
        if len(front) > 1:
            ax.plot([p["asr"] for p in front], [p["helpfulness"] for p in front], color="#555555", lw=1.2, ls="--",
                    zorder=2, label="trade-off front")
        seen: dict[str, str] = {}
        sc = None
        for fam in dict.fromkeys(p["family"] for p in pts):
            ps = [p for p in pts if p["family"] == fam]
            col = [p["over_refusal"] if p["over_refusal"] is not None else float("nan") for p in ps]
            sc = ax.scatter(
                [p["asr"] for p in ps],
                [p["helpfulness"] for p in ps],
                c=col,
                cmap="cividis",
                vmin=0,
                vmax=1,
                marker=_marker(fam, seen),
                s=110 if fam == "aligned" else 55,
                edgecolors="#222222",
                linewidths=0.6,
                label=fam,
                zorder=3,
                plotnonfinite=True,
            )
        best = next((p for p in pts if p["label"] == tp.get("best")), None)
        handles, labels = ax.get_legend_handles_labels()
        if best:
            ax.scatter(
                [best["asr"]],
                [best["helpfulness"]],
                s=320,
                facecolors="none",
                edgecolors="#D55E00",
                linewidths=2,
                zorder=4,
            )
            handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="#D55E00", mew=2))
            labels.append("best trade-off")
        xs, ys = [p["asr"] for p in pts], [p["helpfulness"] for p in pts]
        # square-root x scale: the low-ASR models, where the trade-off is decided, get room
        ax.set_xscale("function", functions=(_sqrt, _square))
        ax.set_xlim(-0.002, min(1.0, max(xs) * 1.15 + 0.02))
        ax.set_xticks([t for t in (0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0) if t <= ax.get_xlim()[1]])
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
        ax.set_ylim(max(0.0, min(ys) - 0.08) if min(ys) > 0.1 else -0.03, min(1.03, max(ys) + 0.06))
        ax.set_xlabel("attack success rate, mean of text / multimodal / jailbreak (lower is safer; square-root scale)")
        ax.set_ylabel("helpfulness  (higher is better)")
        key = [p for p in pts if p["family"] in ("aligned", "adapted", "safety tuning") or p is best]
        rest = sorted((p for p in pts if p not in key and p in front), key=lambda p: p["asr"])
        _place_labels(ax, fig, key + rest, pts)
        if sc is not None:
            cb = fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.01)
            cb.set_label("over-refusal (benign requests refused)")
        fig.legend(handles, labels, loc="outside lower center", ncol=min(5, len(labels)), fontsize=7.5, markerscale=0.8,
                   handletextpad=0.3, columnspacing=1.0)  # below the axes: never covers a point
        return to_data_uri(fig)


def weight_heatmap(pair: str, recs: list[dict[str, Any]], value: str = "rel_change", *, cmap: str = "viridis",
                   vmin: float | None = None, vmax: float | None = None) -> str | None:
    """Layer x module heatmap of `value` for one model pair (diagnose.weights records)."""
    rows = [r for r in recs if isinstance(r.get(value), (int, float)) and r.get("layer") is not None]
    if not rows:
        return None
    layers = sorted(
        {r["layer"] for r in rows},
        key=lambda x: (not isinstance(x, (int, float)), x if isinstance(x, (int, float)) else str(x)),
    )
    modules = list(dict.fromkeys(str(r.get("module", "?")) for r in rows))
    import numpy as np

    grid = np.full((len(modules), len(layers)), np.nan)
    for r in rows:
        grid[modules.index(str(r.get("module", "?"))), layers.index(r["layer"])] = float(r[value])
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        fig = _figure(min(9.5, 2.2 + 0.35 * len(layers)), 1.0 + 0.28 * len(modules))
        ax = fig.add_subplot()
        im = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_yticks(range(len(modules)), modules, fontsize=7.5)
        step = max(1, len(layers) // 16)
        ax.set_xticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)], fontsize=7.5)
        ax.set_xlabel("layer")
        ax.set_title(f"{pair}: {value.replace('_', ' ')}")
        fig.colorbar(im, ax=ax, pad=0.01).set_label(value.replace("_", " "))
        return to_data_uri(fig)


def layer_curves(title: str, series: dict[str, list[tuple[Any, float]]], ylabel: str) -> str | None:
    """One line per series (model / pair / module) of a per-layer quantity."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.2, 3.0)
        ax = fig.add_subplot()
        styles = ("-", "--", "-.", ":")
        for i, (name, pts) in enumerate(series.items()):
            pts = sorted(pts, key=lambda p: p[0])
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.4, ls=styles[(i // 8) % 4], label=name
            )
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        xs = {p[0] for pts in series.values() for p in pts}
        if len(xs) == 1:
            x = next(iter(xs))
            ax.set_xlim(x - 1, x + 1)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7, ncol=1 if len(series) < 6 else 2, loc="best")  # names the model / pair even when alone
        return to_data_uri(fig)


def numeric_fields(recs: Iterable[dict[str, Any]], skip: tuple[str, ...] = ("layer",)) -> list[str]:
    out: dict[str, None] = {}
    for r in recs:
        for k, v in r.items():
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = None
    return list(out)
