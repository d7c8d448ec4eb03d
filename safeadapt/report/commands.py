"""CLI: `safeadapt report DIR [--out FILE]` renders a study, demo or eval output directory into one
self-contained HTML page (DIR/report.html by default) that opens from disk without a network."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say


def register(app: typer.Typer) -> None:
    @app.command("report")
    @user_errors
    def report(
        directory: Path = typer.Argument(..., metavar="DIR", help="Study, demo or eval output directory."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default DIR/report.html)."),
        samples: int = typer.Option(
            5, "--samples", min=0, help="Sample prompts shown per suite (the same ones for every model)."
        ),
    ) -> None:
        """Render DIR into one self-contained report.html: results table, breakdowns, trade-off plot,
        diagnosis, judges, sample generations, provenance (each section only when its data exists)."""
        from safeadapt.report.render import write_report

        path = write_report(directory, out, samples_per_suite=samples)
        say(f"report written to {path}")


def write_study_report(out: Path) -> Path | None:
    """Write OUT/report.html at the end of a study; a report failure never loses the study's
    results, so it is reported as one warning line instead of raised."""
    import sys

    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.report.render import write_report

    try:
        return write_report(out)
    except (SafeAdaptError, OSError, ValueError, KeyError, TypeError) as e:
        print(f"warning: report not written: {' '.join(str(e).split())}", file=sys.stderr)
        return None
