"""CLI: `safeadapt judge FILE --judge refusal --prompt-col prompt --response-col completion --out
OUT.jsonl` grades completions made elsewhere (CSV/JSONL/JSON), one JSON record per input row;
LLM judges take `--judge-model PATH` (`--judge-backend hf|vllm`) or `--judge-endpoint URL --judge-model NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from safeadapt.core.cli_support import user_errors
from safeadapt.core.console import say


def build_backend(
    judge_model: str | None,
    judge_endpoint: str | None,
    api_key_env: str,
    threads: int | None,
    batch_size: int,
    kind: str = "hf",
) -> Any:
    """A Backend for LLM judges (imported lazily: transformers only loads when needed); `kind`
    picks how a local judge model runs (hf, vllm, auto)."""
    from safeadapt.core.errors import SafeAdaptError

    if judge_endpoint:
        if not judge_model:
            raise SafeAdaptError("--judge-endpoint needs --judge-model NAME (the model name the endpoint serves)")
        from safeadapt.eval.backends.openai_http import OpenAIBackend

        return OpenAIBackend(judge_model, base_url=judge_endpoint, api_key_env=api_key_env)
    if judge_model:
        if kind not in ("hf", "vllm", "auto"):
            raise SafeAdaptError(
                f"--judge-backend must be hf, vllm or auto (an endpoint: --judge-endpoint), got {kind!r}"
            )
        from safeadapt.eval.backends import make_backend

        return make_backend(
            judge_model, kind, **({} if kind == "vllm" else {"threads": threads, "max_batch": batch_size})
        )
    return None


def member_names(members: str | None) -> list[str]:
    """The judges named by `--members` (comma-separated; blanks dropped)."""
    return [m.strip() for m in (members or "").split(",") if m.strip()]


def make_judge(name: str, *, backend: Any = None, threshold: float | None = None, members: str | None = None,
               mode: str = "majority", guard_native: bool = False, max_new_tokens: int | None = None,
               batch_size: int = 16, calibrate: str | Path | None = None,
               calibrate_cols: tuple[str, str, str] = ("prompt", "completion", "label")) -> tuple[Any, dict[str, Any]]:
    """Build judge `name` with the options that apply to it; returns (judge, config for provenance)."""
    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.eval.judges.registry import get_judge, judge_names, judge_needs, llm_judges
    from safeadapt.eval.types import DecodingConfig

    known = judge_names()
    if name not in known:
        raise SafeAdaptError(f"unknown judge {name!r}; known: {', '.join(known)}")
    member_list = member_names(members)
    for m in member_list:
        if m not in known or m == "ensemble":
            raise SafeAdaptError(
                f"unknown ensemble member {m!r}; known: {', '.join(k for k in known if k != 'ensemble')}"
            )
    llms = llm_judges()
    needs_llm = name in llms or any(m in llms for m in member_list)
    if needs_llm and backend is None:
        raise SafeAdaptError(
            f"judge {name!r} needs an LLM: pass --judge-model PATH (local) or --judge-endpoint URL --judge-model NAME"
        )
    if not needs_llm and backend is not None:
        raise SafeAdaptError(
            f"--judge-model/--judge-endpoint only apply to LLM judges ({', '.join(llms)}), not {name!r}"
        )
    config: dict[str, Any] = {"judge": name}
    if needs_llm:
        dec = {"temperature": 0.0, "batch_size": batch_size}
        if max_new_tokens:
            dec["max_new_tokens"] = max_new_tokens
        config["decoding"] = dec

    def kw_for(j: str) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        needs = judge_needs(j)
        if needs["needs_backend"]:
            kw["backend"] = backend
            cls_default = needs["default_max_new_tokens"] or 256
            kw["decoding"] = DecodingConfig(
                max_new_tokens=max_new_tokens or cls_default, temperature=0.0, batch_size=batch_size
            )
        if j == "guard" and guard_native:
            kw["native"] = True
        if threshold is not None and needs["takes_threshold"]:
            kw["threshold"] = threshold
        if calibrate is not None and j == "refusal":
            kw.update(
                calibration=calibrate,
                prompt_col=calibrate_cols[0],
                response_col=calibrate_cols[1],
                label_col=calibrate_cols[2],
            )
        return kw

    if calibrate is not None and name != "refusal" and "refusal" not in member_list:
        raise SafeAdaptError(f"--calibrate only applies to the refusal judge (or an ensemble with it), not {name!r}")
    if calibrate is not None:
        from safeadapt.core.provenance import hash_path

        if not Path(calibrate).is_file():
            raise SafeAdaptError(f"calibration file not found: {calibrate}")
        config["calibration"] = {"file": str(calibrate), "sha256": hash_path(calibrate)}

    if name == "ensemble":
        if not member_list:
            raise SafeAdaptError("--judge ensemble needs --members a,b[,c] (e.g. refusal,rubric,guard)")
        judge = get_judge("ensemble", judges=member_list, mode=mode, backend=backend,
                          judge_kwargs={m: kw_for(m) for m in member_list})
        config.update(members=member_list, mode=mode)
    else:
        if member_list:
            raise SafeAdaptError("--members only applies to --judge ensemble")
        if threshold is not None and not judge_needs(name)["takes_threshold"]:
            raise SafeAdaptError(f"--threshold does not apply to the {name} judge (its verdict has no score cut)")
        judge = get_judge(name, **kw_for(name))
    config.update(threshold=threshold, guard_native=guard_native, llm=needs_llm)
    return judge, config


def register(app: typer.Typer) -> None:
    @app.command("judge")
    @user_errors
    def judge_cmd(
        file: Path = typer.Argument(..., help="completions to grade: .csv, .tsv, .jsonl or .json"),
        out: Path = typer.Option(..., "--out", help="output .jsonl: one record per input row, in order"),
        judge: str = typer.Option(
            "refusal",
            "--judge",
            help="refusal | harmbench | strongreject-ft | guard | rubric | strongreject | ensemble, or any judge "
                 "`safeadapt plugins` lists",
        ),
        prompt_col: Optional[str] = typer.Option(
            None,
            "--prompt-col",
            help="column with the user prompt ('' for none); default: the first of prompt, messages (last user turn), "
                 "question, forbidden_prompt, goal, instruction",
        ),
        response_col: Optional[str] = typer.Option(
            None,
            "--response-col",
            help="column with the model's response; default: the first of completion, response, output, generation, "
                 "answer",
        ),
        judge_model: Optional[str] = typer.Option(
            None,
            "--judge-model",
            help="LLM judges: local model (HF dir/GGUF), or the served model name with --judge-endpoint",
        ),
        judge_endpoint: Optional[str] = typer.Option(
            None, "--judge-endpoint", help="LLM judges: OpenAI-compatible base URL (http://host:port/v1)"
        ),
        judge_backend: str = typer.Option(
            "hf",
            "--judge-backend",
            help="LLM judges: how --judge-model runs: hf (transformers, CPU) | vllm (GPU) | auto",
        ),
        judge_api_key_env: str = typer.Option(
            "OPENAI_API_KEY", "--judge-api-key-env", help="env var holding the endpoint's API key"
        ),
        threshold: Optional[float] = typer.Option(
            None,
            "--threshold",
            help="refusal: score cut (0.5); rubric: min score counted as compliance (3); strongreject: score cut (0); "
                 "strongreject-ft: min score counted as compliance (0.5)",
        ),
        members: Optional[str] = typer.Option(None, "--members", help="ensemble: comma-separated judges"),
        mode: str = typer.Option("majority", "--mode", help="ensemble: majority | primary (first member)"),
        guard_native: bool = typer.Option(
            False,
            "--guard-native",
            help="guard: force Llama Guard's own format (the checkpoint's chat template, else Llama Guard 3's "
                 "prompt); by default it is used when the judge tokenizer's template is a Llama Guard one",
        ),
        batch_size: int = typer.Option(16, "--batch-size", min=1, help="items per judge call / checkpoint"),
        max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1, help="LLM judges: output budget"),
        threads: str = typer.Option(
            "auto",
            "--threads",
            help="torch CPU threads for a local judge model: a number, or auto = the cores not already busy",
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace OUT (and discard a partial checkpoint)"),
        calibrate: Optional[Path] = typer.Option(
            None,
            "--calibrate",
            help="refusal: refit its weights on this labelled file first (same prompt/response columns, label column "
                 "--label-col)",
        ),
        label_col: str = typer.Option(
            "label",
            "--label-col",
            help="--calibrate: label column (refusal/compliance, 1/0 or XSTest final_label; falls back to final_label)",
        ),
    ) -> None:
        """Grade completions (a CSV/TSV/JSONL/JSON table, or `safeadapt eval`'s own generations.jsonl as is)
        with a judge; resumable, one JSON record per row: label refusal | compliance (the harmful content
        asked for) | benign (a harmless answer: the refusal judge, harmbench, strongreject-ft) | no_answer
        (empty, degenerate or off-topic) | unparsed (an LLM judge's unreadable reply). A malformed row (a CSV row with
        too few
        or too many fields, bad JSON) is a FILE:LINE error and nothing is written."""
        from safeadapt.core.errors import SafeAdaptError
        from safeadapt.eval.judges.grade import grade_file
        from safeadapt.eval.judges.registry import judge_names, llm_judges

        if judge not in judge_names():  # fail fast, before reading data or loading a model
            raise SafeAdaptError(f"unknown judge {judge!r}; known: {', '.join(judge_names())}")
        if (
            calibrate is not None
            and judge != "refusal"
            and "refusal" not in member_names(members)
        ):
            raise SafeAdaptError(
                f"--calibrate only applies to the refusal judge (or an ensemble with it), not {judge!r}"
            )
        if out.exists() and not overwrite:
            raise SafeAdaptError(f"output exists: {out} (pass --overwrite to replace it)")
        from safeadapt.eval.judges.grade import detect_columns, extract_items, read_table

        located = read_table(file)  # bad input -> one-line error before any model is loaded
        pc, rc = detect_columns([r for _, r in located], prompt_col or None, response_col or None, source=str(file))
        extract_items([r for _, r in located], None if prompt_col == "" else pc, rc, source=str(file),
                      wheres=[w for w, _ in located], detected=not prompt_col)
        from safeadapt.core.runtime import resolve_threads

        backend = (
            build_backend(
                judge_model,
                judge_endpoint,
                judge_api_key_env,
                resolve_threads(threads) if judge_model and not judge_endpoint else None,
                batch_size,
                judge_backend,
            )
            if (
                judge in llm_judges()
                or (judge == "ensemble" and any(m in llm_judges() for m in member_names(members)))
            )
            else None
        )
        if backend is None and (judge_model or judge_endpoint):
            raise SafeAdaptError(
                f"--judge-model/--judge-endpoint only apply to LLM judges ({', '.join(llm_judges())}), not {judge!r}"
            )
        judge_obj, config = make_judge(
            judge,
            backend=backend,
            threshold=threshold,
            members=members,
            mode=mode,
            guard_native=guard_native,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            calibrate=calibrate,
            calibrate_cols=(prompt_col or "prompt", response_col or "completion", label_col),
        )
        if backend is not None:
            config["judge_model"] = judge_model
            config["judge_endpoint"] = judge_endpoint
        summary = grade_file(file, judge_obj, out, prompt_col=prompt_col, response_col=response_col,
                             batch_size=batch_size, overwrite=overwrite, config=config)
        lab = summary["labels"]
        msg = (
            f"judged {summary['n']} rows with {judge}: refusal {lab.get('refusal', 0)} "
            f"({summary['refusal_rate']:.1%}), compliance {lab.get('compliance', 0)}, benign {lab.get('benign', 0)}, "
            f"no answer {lab.get('no_answer', 0)}, unparsed {lab.get('unparsed', 0)}"
        )
        if summary["skipped_rows"]:
            msg += f", {summary['skipped_rows']} rows without a response skipped"
        if summary.get("harmfulness_score") is not None:
            msg += f", harmfulness score {summary['harmfulness_score']:.2f}, rate {summary['harmfulness_rate']:.1%}"
        if summary["resumed_rows"]:
            msg += f" ({summary['resumed_rows']} rows from checkpoint)"
        say(f"{msg} -> {out}")
