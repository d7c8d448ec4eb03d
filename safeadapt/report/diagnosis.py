"""Diagnosis section from diagnose stage outputs: weights.json `per_layer` records (pair, layer,
module, rel_change, cos_tv) as one layer x module heatmap per pair plus cosine curves;
activations.json per-layer lists (one per model) as curves per quantity; the stage's own PNGs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from safeadapt.report import plots

MAX_PAIRS = 8
MAX_PNG_BYTES = 2 * 1024 * 1024
SKIP_FIELDS = ("layer", "n", "n_params", "rows", "seconds", "hidden")
#: readable names of the diagnose stages' per-layer quantities (others are shown by field name)
FIELD_TITLES = {"probe_acc": "held-out probe accuracy, harmful vs harmless", "cos_gap": "cosine gap (Safety Layers)",
                "separation": "separation along the refusal direction (d')", "direction_norm": "refusal direction norm",
                "cos_dir": "cosine with the first model's refusal direction",
                "proj_ratio": "projection ratio on the first model's refusal direction"}


def _per_layer_lists(obj: Any, name: str | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every `per_layer` list of records in `obj`, named by the nearest enclosing key or its
    `model` field (activations.json: a per_layer list per model, in whatever nesting)."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    if isinstance(obj, dict):
        nm = str(obj.get("label") or obj.get("pair") or obj.get("model") or obj.get("name") or name or "model")
        pl = obj.get("per_layer")
        if isinstance(pl, list) and pl and all(isinstance(r, dict) for r in pl):
            out.append((nm, pl))
        elif isinstance(pl, dict):  # {"per_layer": {model: [...]}}
            for k, v in pl.items():
                if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                    out.append((str(k), v))
        for k, v in obj.items():
            if k != "per_layer" and isinstance(v, (dict, list)):
                out.extend(_per_layer_lists(v, str(k)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict):
                out.extend(_per_layer_lists(v, name))
    return out


def _weights_figures(w: Any) -> list[dict[str, str]]:
    recs = w.get("per_layer") if isinstance(w, dict) else w if isinstance(w, list) else None
    if not isinstance(recs, list):
        return []
    recs = [r for r in recs if isinstance(r, dict)]
    figs = []
    pairs = list(dict.fromkeys(str(r.get("pair", "weights")) for r in recs))
    for pair in pairs[:MAX_PAIRS]:
        rs = [r for r in recs if str(r.get("pair", "weights")) == pair]
        uri = plots.weight_heatmap(pair, rs)
        if uri:
            figs.append({"title": f"relative weight change per layer and module: {pair}", "uri": uri})
        if any(isinstance(r.get("cos_tv"), (int, float)) for r in rs):
            uri = plots.weight_heatmap(pair, rs, "cos_tv", cmap="PuOr", vmin=-1.0, vmax=1.0)
            if uri:
                figs.append({"title": f"cosine between the two task vectors per layer and module: {pair}", "uri": uri})
    return figs


def _activation_figures(a: Any) -> list[dict[str, str]]:
    lists = _per_layer_lists(a)
    if not lists:
        return []
    fields = plots.numeric_fields((r for _, rs in lists for r in rs), skip=SKIP_FIELDS)
    figs = []
    for f in fields:
        series: dict[str, list[tuple[Any, float]]] = {}
        for model, rs in lists:
            pts = [
                (r["layer"], float(r[f]))
                for r in rs
                if isinstance(r.get(f), (int, float)) and r.get("layer") is not None
            ]
            if pts:
                series.setdefault(model, []).extend(pts)
        title = FIELD_TITLES.get(f, f.replace("_", " "))
        uri = plots.layer_curves(title, series, f.replace("_", " "))
        if uri:
            figs.append({"title": f"{f.replace('_', ' ')} per layer: {title}", "uri": uri})
    return figs


def _png(path: Path) -> dict[str, str] | None:
    try:
        if path.stat().st_size > MAX_PNG_BYTES:
            return None
        return {"title": path.name, "uri": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}
    except OSError:
        return None


def _recommendation(r: Any) -> str | None:
    """One line from diagnose.recommend's recommend.json: the layer range and the merge weights."""
    if not isinstance(r, dict) or not isinstance(r.get("layers"), (list, tuple)) or len(r["layers"]) != 2:
        return None
    lo, hi = r["layers"]
    extra = f"; safety weight {r['inside']} inside, {r['outside']} outside" if "inside" in r and "outside" in r else ""
    return f"recommended layers {lo}-{hi}" + (f" ({r['pair']})" if r.get("pair") else "") + extra


def diagnosis(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{stage, figures: [{title, uri}], images: [{title, uri}], note}] for every diagnose output
    found. The report draws its own figures from the JSON (one style); the stage's PNGs come along."""
    out = []
    for e in entries:
        figs = _weights_figures(e.get("weights")) + _activation_figures(e.get("activations"))
        imgs = [x for x in (_png(p) for p in e.get("images") or []) if x]
        note = _recommendation(e.get("recommend"))
        if figs or imgs or note:
            out.append({"stage": e["stage"], "figures": figs, "images": imgs, "note": note})
    return out
