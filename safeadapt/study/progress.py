"""The study run's rich display: one overall bar plus one row per running stage, and plain lines
(cached / start ... alongside ... / done / failed) that say which stages ran in parallel."""

from __future__ import annotations

from typing import Any


class StudyProgress:
    """The study's rich display: one overall bar plus one row per running stage; plain lines
    (cached / start ... alongside ... / done / failed) say what ran in parallel."""

    def __init__(self, prog: Any, total: int, workers: int, write: Any, log_of: Any = None) -> None:
        from safeadapt.core.runtime import progress_enabled

        self.prog, self.workers, self.write, self.live = prog, workers, write, progress_enabled()
        self.log_of = log_of  # PlannedStage -> its log file (a failure shows the log's last lines)
        self.task = prog.add_task("study", total=total)
        self.rows: dict[str, Any] = {}
        self.n = 0

    @staticmethod
    def label(p: Any) -> str:
        from rich.markup import escape

        return escape(f"{p.stage.name} ({p.stage.kind})")

    def cached(self, p: Any) -> None:
        self.prog.console.print(f"  [dim]cached[/dim]  {self.label(p)}")
        self.prog.advance(self.task)

    def start(self, p: Any, others: list[Any]) -> None:
        from rich.markup import escape

        self.write("running")
        self.n += 1
        if self.live:
            self.rows[p.stage.name] = self.prog.add_task(f"  > {self.label(p)}", total=None)
        if self.workers > 1:
            also = f" [dim]alongside {escape(', '.join(o.stage.name for o in others))}[/dim]" if others else ""
            self.prog.console.print(f"  start   {self.label(p)}{also}")
        elif not self.live:  # plain logs: say what is starting
            self.prog.console.print(f"  running {self.label(p)}")
        self._describe()

    def finish(self, p: Any) -> None:
        from rich.markup import escape

        if p.stage.name in self.rows:
            self.prog.remove_task(self.rows.pop(p.stage.name))
        if p.status == "done":
            self.prog.console.print(f"  [green]done[/green]    {self.label(p)} {p.seconds or 0:.1f}s")
        else:
            self.prog.console.print(f"  [red]failed[/red]  {self.label(p)}: {escape(p.error or '')}")
            self._log_tail(p)
            self.write("running")
        # (a success is recorded by the next stage's "running" write or the final one:
        # one study.json write per stage keeps many-tiny-stage sweeps cheap)
        self.prog.advance(self.task)
        self._describe()

    def _log_tail(self, p: Any) -> None:
        from rich.markup import escape

        from safeadapt.core.console import tail

        log = self.log_of(p) if self.log_of else None
        if log is None:
            return
        # what the stage printed, then where it raised (the last frame of its traceback, in logs/*.err)
        for path, n in ((log, 15), (log.with_suffix(".err"), 3)):
            lines = tail(path, n)
            if lines:
                self.prog.console.print(f"          [dim]last lines of {escape(str(path))}:[/dim]")
            for line in lines:
                self.prog.console.print(f"          [dim]|[/dim] {escape(line)}", highlight=False, soft_wrap=True)

    def skip(self, p: Any) -> None:
        self.prog.advance(self.task)

    def _describe(self) -> None:
        running = len(self.rows) if self.live else 0
        extra = f", {running} running on {self.workers} workers" if self.workers > 1 and self.live else ""
        self.prog.update(self.task, description=f"study ({self.n} started{extra})")
