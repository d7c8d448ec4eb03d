"""`write_report(src, out)`: collect a study / eval directory, build every section that has data,
render the packaged jinja2 template into one self-contained HTML file (plots and images inlined
as data URIs, CSS and the filter script inline, no network requests) and write it atomically."""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any

from safeadapt.core.atomic import atomic_write_text
from safeadapt.report import analysis, diagnosis, plots, sections
from safeadapt.report.collect import ReportData, collect

SECTIONS = ("finding", "headline", "breakdowns", "pareto", "diagnosis", "judges", "samples", "provenance")


def _pct(x: Any) -> str:
    return "–" if not isinstance(x, (int, float)) else f"{x:.2f}"


def _heat(x: Any, higher_is_worse: bool = True) -> str:
    """Cell background from cividis (colour-blind-safe), brighter = worse, and a readable text colour."""
    if not isinstance(x, (int, float)):
        return ""
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["cividis"](float(x) if higher_is_worse else 1.0 - float(x))
    fg = "#000" if (0.299 * r + 0.587 * g + 0.114 * b) > 0.55 else "#fff"
    return f"background:#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x};color:{fg}"


def _key_models(data: ReportData, head: dict[str, Any] | None) -> list[str]:
    """Reference, adapted, best trade-off and the first safety-tuned model, in that order."""
    keys = [analysis.reference_role(data.models, data.roles), analysis.adapted_role(data.models, data.roles),
            head["best"] if head else None]
    keys += analysis.safety_roles(data.models)[:1]
    return [k for k in dict.fromkeys(keys) if k]


def build_context(data: ReportData, *, samples_per_suite: int = 5) -> dict[str, Any]:
    head = analysis.headline(data) if data.models else None
    tp = analysis.tradeoff_points(data)
    ctx = {
        "title": data.title,
        "source": str(data.source.resolve()),
        "generated": _dt.datetime.fromtimestamp(time.time(), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "findings": analysis.findings(data) if data.models else [],
        "checks_source": analysis.checks(data)[1] if data.models else None,
        "headline": head if head and head["rows"] else None,
        "tradeoff_uri": plots.tradeoff_plot(tp),
        "tradeoff": tp,
        "breakdowns": sections.breakdowns(data),
        "holistic": sections.holistic(data, _key_models(data, head)),
        "diagnosis": diagnosis.diagnosis(data.diagnose),
        "search": [{"stage": s["stage"], "n_trials": len(s.get("trials") or [])} for s in data.search],
        "judges": sections.judges(data),
        "samples": sections.samples(data, samples_per_suite),
        "provenance": sections.provenance(data),
    }
    ctx["present"] = {
        "finding": bool(ctx["findings"]),
        "headline": bool(ctx["headline"]),
        "breakdowns": bool(ctx["breakdowns"] or ctx["holistic"]),
        "pareto": bool(ctx["tradeoff_uri"]) and len(tp["points"]) >= 2,
        "diagnosis": bool(ctx["diagnosis"]),
        "judges": bool(ctx["judges"]),
        "samples": bool(ctx["samples"]),
        "provenance": True,
    }
    return ctx


def render(ctx: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("safeadapt.report", "templates"),
        autoescape=select_autoescape(["html", "jinja"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["f2"] = _pct
    env.filters["heat"] = _heat
    return env.get_template("report.html.jinja").render(**ctx, sections=SECTIONS)


def write_report(src: str | Path, out: str | Path | None = None, *, samples_per_suite: int = 5) -> Path:
    """Render `src`'s report to `out` (default src/report.html); returns the path written."""
    data = collect(src)
    html = render(build_context(data, samples_per_suite=samples_per_suite))
    path = Path(out) if out is not None else Path(src) / "report.html"
    atomic_write_text(path, html)
    return path
