"""The miniature world as a plugin of the core (loaded by `safeadapt.core.plugins`): its stage kinds
and judge, the search's eval kind "world", the demo's report checks and the `demo` command."""

from __future__ import annotations

from safeadapt.core.cli_support import COMMANDS
from safeadapt.repair.search.evals import SEARCH_EVALS, EvalKind
from safeadapt.report.analysis import REPORT_CHECKS
from safeadapt.world import commands, demo, search_eval
from safeadapt.world import stages as _stages  # noqa: F401  (registers the world.* kinds and the "world" judge)

SEARCH_EVALS.register("world")(EvalKind(load=search_eval.load, judge="world", decoding=search_eval.DECODING,
                                        backend=search_eval.backend))
REPORT_CHECKS.register("demo-targets")(demo.check_targets)
COMMANDS.register("demo")(commands.register)
