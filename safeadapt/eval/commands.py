"""CLI: `safeadapt eval MODEL --suite a,b --judge refusal --out DIR [...]` — runs evaluation suites
on a model (local HF dir / GGUF / served endpoint) and writes results.json + generations.jsonl."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors

DEFAULT_SUITES = "text-safety,jailbreak,over-refusal,mm-safety,helpfulness"


def _parse_datasets(specs: list[str]) -> dict[str, list[Any]]:
    from safeadapt.core.errors import SafeAdaptError

    out: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            raise SafeAdaptError(
                f"--dataset {spec!r}: expected SUITE=SPEC (e.g. over-refusal=xstest:/path/xstest_prompts.csv)"
            )
        suite, _, src = spec.partition("=")
        from safeadapt.data.loaders import load_samples

        samples = list(load_samples(src.strip()))
        if not samples:
            raise SafeAdaptError(f"dataset {src.strip()!r} for suite {suite.strip()!r} is empty")
        out.setdefault(suite.strip(), []).extend(samples)
    return out


def _note(block: dict[str, Any]) -> str:
    """The table's note: the other outcomes beside a judged rate, text/visual helpfulness, and
    how many samples of the suite's label the dataset had."""
    parts = []

    def rate(key: str, label: str) -> None:
        r = block.get(key) or {}
        if r.get("n"):
            parts.append(f"{label} {r['value']:.2f} ({r['k']}/{r['n']})")

    if block["metric"] == "asr":
        rate("non_refusal_rate", "non-refusal")
        rate("refusal_rate", "refusal")
    elif block["metric"] == "refusal_rate":
        rate("non_refusal_rate", "answered")
    if block["metric"] in ("asr", "refusal_rate"):
        rate("no_answer_rate", "no answer")
        u = block.get("unparsed") or {}
        parts.append(f"unparsed {u.get('k', 0)}" + (" (not in n)" if u.get("k") else ""))
    rate("accuracy_text", "text")
    rate("accuracy_visual", "visual")
    smp = block.get("samples") or {}
    ds = smp.get("dataset") or {}
    if smp and len(ds) > 1:
        parts.append(f"{smp['used']} {smp['wanted']} of {sum(ds.values())} samples used")
    return "; ".join(parts)


def _judge_options(
    pairs: list[str], model: str | None, backend: str, endpoint: str | None, api_key_env: str
) -> dict[str, Any]:
    """judge_options for `resolve_judge` from the --judge-* flags (KEY=VALUE values read as YAML scalars)."""
    import yaml

    from safeadapt.core.errors import SafeAdaptError

    opts: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SafeAdaptError(f"--judge-option wants KEY=VALUE, got {pair!r}")
        opts[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    if endpoint:
        if not model:
            raise SafeAdaptError("--judge-endpoint needs --judge-model NAME (the model name the endpoint serves)")
        opts.update(model=model, backend="openai", base_url=endpoint, api_key_env=api_key_env)
    elif model:
        opts.update(model=model, backend=backend)
    elif backend != "auto":
        raise SafeAdaptError("--judge-backend needs --judge-model")
    return opts


def _resolve_cli_judges(judge: str, judge_opts: dict[str, Any]) -> dict[str, Any]:
    """The --judge list as judge objects; with several judges the --judge-* model options go to each
    one that needs an LLM backend, the offline ones take none."""
    from safeadapt.eval.judges.build import judge_needs_backend
    from safeadapt.eval.runner import judge_list, resolve_judges

    names = [n for n in judge_list(judge) if isinstance(n, str)]
    if len(names) <= 1:
        return resolve_judges(judge, judge_opts)
    from safeadapt.eval.judges.registry import judge_names

    known = set(judge_names())
    per = {n: (dict(judge_opts) if n in known and (n == "ensemble" or judge_needs_backend(n)) else {}) for n in names}
    return resolve_judges(judge, per)


def judges_table(res: dict[str, Any]) -> Any:
    """Each judge's rate per judged suite, with its raw agreement and kappa against the primary judge
    (binary reading and full label); the judges' known human agreement goes in the caption."""
    from rich.table import Table

    t = Table(title="judges on the same generations (first = primary)")
    for col in ("suite", "judge", "value", "95% CI", "k/n", "agree / κ vs primary: binary", "full label"):
        t.add_column(col)
    human: dict[str, str] = {}
    for name, block in res["suites"].items():
        per, m = block.get("judges") or {}, block["metric"]
        first = next(iter(per), None)
        pair = {p["b"]: p for p in block.get("judge_agreement") or [] if p["a"] == first}

        def fmt(x: dict[str, Any] | None) -> str:
            return "-" if not x or x["agreement"] is None else f"{x['agreement']:.2f} / {x['kappa']:.2f}"

        for jn, jb in per.items():
            v, a = jb[m], pair.get(jn) or {}
            if jb.get("human_agreement"):
                human[jn] = jb["human_agreement"]
            t.add_row(name, jn, "-" if v["value"] is None else f"{v['value']:.3f}",
                      "-" if v["value"] is None else f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]", f"{v['k']}/{v['n']}",
                      fmt(a.get("binary")), fmt(a.get("label")))
    if human:
        t.caption = "human agreement: " + "; ".join(f"{k}: {v}" for k, v in human.items())
    return t


def _p(*lines: str) -> str:
    return " ".join(lines)


EVAL_HELP = "\n\n".join(
    [
        "Evaluate MODEL on safety and helpfulness suites (generate once, grade many).",
        _p(
            "Writes OUT/results.json (each suite's metric with a Wilson 95% interval and k/n; ASR = share of replies",
            "judged `compliance` (delivering the harmful content asked for), with the non-refusal rate (compliance +",
            "benign, a harmless answer), the refusal and no-answer rates and the unparsed count beside it; "
            "helpfulness text and",
            "visual apart) and OUT/generations.jsonl (every prompt, response and judgement; `safeadapt judge` reads "
            "it as is).",
        ),
        "--dataset SUITE=SPEC replaces a suite's built-in samples, for example:",
        "--dataset over-refusal=xstest:data/xstest_prompts.csv --dataset text-safety=xstest:data/xstest_prompts.csv",
        _p(
            "Suites use only the samples of their label (harmful: text-safety, jailbreak, mm-safety; benign: "
            "over-refusal;",
            "unlabelled samples count as the suite's kind), so one mixed file such as XSTest feeds both; results.json",
            "says how many of each label the dataset had and how many were used.",
        ),
        _p(
            "SPEC = ADAPTER:PATH for a benchmark's own format, or a plain PATH (.csv, .tsv, .json, .jsonl, .txt, "
            ".parquet",
            "with prompt / label / category columns). Adapters: xstest, harmbench, advbench, strongreject, figstep,",
            "mm-safetybench, sorry-bench, do-not-answer (and table, the default).",
        ),
        "Set SAFEADAPT_NO_PROGRESS=1 to hide every progress bar (the libraries' too).",
    ]
)


def register(app: typer.Typer) -> None:
    @app.command("eval", help=EVAL_HELP)
    @user_errors
    def eval_cmd(
        model: str = typer.Argument(
            ..., help="model: HF dir, .gguf file, hub id (offline cache), or served model name with --backend openai"
        ),
        suite: str = typer.Option(
            DEFAULT_SUITES,
            "--suite",
            help="comma-separated suites: text-safety, jailbreak, mm-safety (ASR on harmful prompts), over-refusal "
                 "(refusal rate on benign prompts), helpfulness (accuracy, text and visual apart)",
        ),
        judge: str = typer.Option(
            "refusal",
            "--judge",
            help="judge(s) for the judged suites, comma-separated: refusal (offline, default), world; LLM judges "
                 "harmbench, strongreject-ft, guard, rubric, strongreject need --judge-model (docs/judges.md). "
                 "Several (--judge a,b) grade the same generations: the first is primary (headline numbers), "
                 "results.json adds each judge's rate and the pairwise agreement and kappa; the --judge-* model flags "
                 "go to every LLM judge among them",
        ),
        judge_model: Optional[str] = typer.Option(
            None,
            "--judge-model",
            help="LLM judges: the judge checkpoint (HF dir / hub id / GGUF), or the served model name with "
                 "--judge-endpoint",
        ),
        judge_backend: str = typer.Option(
            "auto",
            "--judge-backend",
            help="LLM judges: auto | hf | vllm (how --judge-model runs; openai with --judge-endpoint)",
        ),
        judge_endpoint: Optional[str] = typer.Option(
            None,
            "--judge-endpoint",
            help="LLM judges: OpenAI-compatible base URL serving --judge-model (http://host:port/v1)",
        ),
        judge_api_key_env: str = typer.Option(
            "OPENAI_API_KEY", "--judge-api-key-env", help="--judge-endpoint: env var holding its API key"
        ),
        judge_option: list[str] = typer.Option(
            [],
            "--judge-option",
            help="KEY=VALUE (repeatable) for the judge or its backend, e.g. variant=mistral (harmbench), native=true "
                 "(guard), threshold=0.5, dtype=bfloat16",
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            help="output directory (results.json, generations.jsonl, cache/); created only once the model has loaded",
        ),
        max_new_tokens: int = typer.Option(
            128, "--max-new-tokens", min=1, help="generation budget per response (tokens)"
        ),
        batch_size: int = typer.Option(
            16, "--batch-size", min=1, help="prompts generated together (also the log-likelihood batch)"
        ),
        threads: str = typer.Option(
            "auto",
            "--threads",
            help="torch CPU threads: a number, or auto = the cores not already busy (never slower than 1 thread when "
                 "other jobs share the machine; docs/benchmarks.md)",
        ),
        seed: int = typer.Option(0, "--seed", help="seed for sampling (with --temperature > 0) and the bootstrap"),
        limit: Optional[int] = typer.Option(
            None, "--limit", min=1, help="max items per suite (round-robin over categories)"
        ),
        dataset: list[str] = typer.Option(
            [],
            "--dataset",
            help="SUITE=SPEC (repeatable): replace a suite's built-in data; SPEC = [ADAPTER:]PATH, see the command "
                 "help above",
        ),
        temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="sampling temperature; 0 = greedy"),
        top_p: float = typer.Option(
            1.0, "--top-p", min=0.0, max=1.0, help="nucleus sampling mass (with --temperature > 0)"
        ),
        bootstrap: int = typer.Option(
            1000,
            "--bootstrap",
            min=0,
            help="bootstrap resamples for means of judge scores (proportions use Wilson intervals)",
        ),
        backend: str = typer.Option(
            "auto",
            "--backend",
            help="auto (vllm when installed and a GPU is present, else hf) | hf (transformers, local) | vllm | openai "
                 "(an OpenAI-compatible server) | a plugin's kind (`safeadapt plugins`)",
        ),
        dtype: str = typer.Option("float32", "--dtype", help="weights dtype for hf/vllm: float32, bfloat16, float16"),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="openai backend: http://host:port/v1"),
        api_key_env: str = typer.Option(
            "OPENAI_API_KEY", "--api-key-env", help="openai backend: env var holding the API key"
        ),
        allow_pickle: bool = typer.Option(
            False, "--allow-pickle", help="allow loading pickle (.bin/.pt) weights; off by default"
        ),
        trust_remote_code: bool = typer.Option(
            False, "--trust-remote-code", help="run the model repository's own Python code; off by default"
        ),
        jailbreak_templates: Optional[Path] = typer.Option(
            None,
            "--jailbreak-templates",
            help="jailbreak styles from a file (.json/.jsonl/.yaml, or .csv one a row): a list of templates, a list "
                 "of {name, template} or a mapping name -> template, each with a {prompt} or [INSERT PROMPT HERE] "
                 "slot; they replace the built-in styles of the jailbreak suite",
        ),
    ) -> None:
        """Evaluate MODEL on safety and helpfulness suites (generate once, grade many)."""
        from rich.table import Table

        from safeadapt.core.console import console, say
        from safeadapt.core.errors import SafeAdaptError
        from safeadapt.eval.runner import evaluate, validate_suites
        from safeadapt.eval.types import DecodingConfig

        names = validate_suites(suite)
        judge_opts = _judge_options(judge_option, judge_model, judge_backend, judge_endpoint, judge_api_key_env)
        judges = _resolve_cli_judges(judge, judge_opts)  # unknown judge -> one-line error before loading the model
        if jailbreak_templates is not None:
            from safeadapt.data.attack_files import load_jailbreak_templates

            if "jailbreak" not in names:
                raise SafeAdaptError(
                    f"--jailbreak-templates applies to the jailbreak suite, which is not in --suite {','.join(names)}"
                )
            load_jailbreak_templates(jailbreak_templates)  # a bad file fails before the model loads
        datasets = _parse_datasets(dataset)
        for k in datasets:
            if k not in names:
                raise SafeAdaptError(f"--dataset given for suite {k!r}, which is not in --suite {','.join(names)}")
        from safeadapt.core.runtime import resolve_threads

        n_threads = resolve_threads(threads)
        if backend in ("hf", "auto"):  # auto: the options the chosen backend takes are kept
            opts: dict[str, Any] = {"dtype": dtype, "threads": n_threads, "max_batch": batch_size,
                                    "allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
        elif backend == "openai":
            opts = {"api_key_env": api_key_env, **({"base_url": base_url} if base_url else {})}
        elif backend == "vllm":
            opts = {"dtype": dtype, "trust_remote_code": trust_remote_code}
        else:  # a plugin's backend kind takes its own defaults
            from safeadapt.eval.backends import backend_kinds

            if backend not in backend_kinds():
                raise SafeAdaptError(f"unknown backend {backend!r}; known: {', '.join(backend_kinds())}")
            opts = {}
        dec = DecodingConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size
        )
        res = evaluate(model, names, out, judge=list(judges.values()), datasets=datasets, decoding=dec, seed=seed,
                       bootstrap=bootstrap, limit=limit, backend=backend, backend_options=opts,
                       jailbreak_templates=jailbreak_templates)
        table = Table(title=f"safeadapt eval: {model}")
        for col in ("suite", "metric", "value", "95% CI", "k/n", "note"):
            table.add_column(col)
        for name, block in res["suites"].items():
            m = block["metric"]
            v = block[m]
            if v["value"] is None:
                table.add_row(name, m, "-", "-", "0/0", block.get("skipped") or "")
            else:
                table.add_row(
                    name,
                    m,
                    f"{v['value']:.3f}",
                    f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]",
                    f"{v['k']}/{v['n']}",
                    _note(block),
                )
        console().print(table)
        if len(judges) > 1:
            console().print(judges_table(res))
        say(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'generations.jsonl'}")
