"""The `safeadapt` command. Each stage registers its own commands from `<stage>/commands.py`;
this file only assembles them. Run `safeadapt --help` for the tour."""

from __future__ import annotations

import importlib
import os

import typer

from safeadapt.core.cli_support import COMMANDS

app = typer.Typer(
    name="safeadapt",
    help="Measure and repair the safety cost of adapting aligned language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order = order in --help.
_STAGES = (
    "safeadapt.repair.merge.commands",  # merge
    "safeadapt.repair.commands",  # repair
    "safeadapt.eval.commands",  # eval
    "safeadapt.eval.judges.commands",  # judge
    "safeadapt.diagnose.commands",  # diagnose weights|activations|recommend
    "safeadapt.train.commands",  # train sft|dpo|vl-adapt|attack
    "safeadapt.study.commands",  # run
    "safeadapt.repair.search.commands",  # search
    "safeadapt.report.commands",  # report
)

@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the libraries' logging and progress bars "
                                 "(transformers, datasets, TRL, accelerate, tqdm); by default they are quiet."),
) -> None:
    """Measure and repair the safety cost of adapting aligned language models."""
    from safeadapt.core.console import set_verbose

    set_verbose(verbose)


for _mod in _STAGES:
    importlib.import_module(_mod).register(app)
for _name, _add in COMMANDS.items():  # commands of plugins (e.g. the miniature world's `demo`)
    _add(app)


@app.command("plugins")
def plugins() -> None:
    """List the plugins loaded and every registered judge, suite, backend, method and stage kind."""
    from safeadapt.core.plugins import load_plugins
    from safeadapt.eval.backends import backend_kinds
    from safeadapt.eval.judges.registry import judge_names
    from safeadapt.eval.suites.base import suite_names
    from safeadapt.repair.merge.methods import METHODS
    from safeadapt.repair.methods import REPAIRS
    from safeadapt.repair.search.evals import SEARCH_EVALS
    from safeadapt.study.stages import STAGE_KINDS

    rows = {
        "judges": judge_names(),
        "suites": suite_names(),
        "backends": backend_kinds(),
        "merge methods": METHODS.names(),
        "repair methods": REPAIRS.names(),
        "stage kinds": STAGE_KINDS.names(),
        "search eval kinds": ["suites", *SEARCH_EVALS.names()],
        "commands": COMMANDS.names(),
        "plugins": load_plugins(),
    }
    for k, v in rows.items():
        typer.echo(f"{k}: {', '.join(v)}")


@app.command("version")
def version() -> None:
    """Print tool and library versions."""
    from safeadapt.core.provenance import versions

    for k, v in versions().items():
        typer.echo(f"{k} {v}")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
