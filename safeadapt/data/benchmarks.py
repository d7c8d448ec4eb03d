"""Dataset adapters for named real safety-benchmark formats: XSTest, HarmBench, AdvBench,
StrongREJECT, FigStep SafeBench, MM-SafetyBench, SORRY-Bench and Do-Not-Answer (one function each,
registered in `ADAPTERS`; no I/O beyond checking image files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeadapt.data.adapters import ADAPTERS, Context, RowError, _as_list, _make_id, _text
from safeadapt.data.readers import Row
from safeadapt.data.schema import Sample

XSTEST_HUMAN = {"1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": "refusal"}


@ADAPTERS.register("xstest")
def xstest_adapter(row: Row, ctx: Context) -> Sample:
    """XSTest (Röttger et al. 2024). Prompts file `id,prompt,type,label,focus,note`: label
    safe -> benign, unsafe -> harmful, category = type. Completions files
    `id,type,prompt,completion,annotation_1,annotation_2,agreement,final_label` (no label column):
    label from type (`contrast_*` -> harmful), the completion in `metadata["completion"]`, the human
    `final_label` and its 2-way reading `metadata["human_label"]` in {refusal, compliance}."""
    d = row.data
    prompt = _text(row, "prompt")
    typ = _text(row, "type")
    meta: dict[str, Any] = {}
    if "completion" in d:
        label = "harmful" if typ.startswith("contrast") else "benign"  # type: ignore[union-attr]
        final = _text(row, "final_label")
        if final not in XSTEST_HUMAN:
            raise RowError(f"unknown final_label {final!r} (expected {', '.join(XSTEST_HUMAN)})")
        meta = {
            "completion": d.get("completion") or "",
            "final_label": final,
            "human_label": XSTEST_HUMAN[final],
            "annotation_1": d.get("annotation_1"),
            "annotation_2": d.get("annotation_2"),
            "agreement": d.get("agreement"),
        }
    else:
        raw = _text(row, "label")
        if raw not in ("safe", "unsafe"):
            raise RowError(f"unknown XSTest label {raw!r} (expected safe or unsafe)")
        label = "benign" if raw == "safe" else "harmful"
        meta = {"focus": d.get("focus"), "note": d.get("note")}
    return Sample(id=_make_id(ctx, row, d.get("id")), prompt=prompt, label=label, category=typ,  # type: ignore[arg-type]
                  source="xstest", metadata=meta)


def _behaviour_text(row: Row) -> str:
    from safeadapt.data.columns import PROMPT_COLUMNS, find_column

    col = find_column(list(row.data), ("prompt", "goal", "Behavior", "behaviour", *PROMPT_COLUMNS), source=row.where,
                      first_wins=True, required=False)
    if col is None:
        raise RowError(f"missing column 'goal' or 'Behavior' (columns: {', '.join(row.data)})")
    return _text(row, col)  # type: ignore[return-value]


@ADAPTERS.register("harmbench")
def harmbench_adapter(row: Row, ctx: Context) -> Sample:
    """HarmBench behaviours: a TXT with one behaviour per line, or the CSV
    `Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID`; all harmful.
    A non-empty ContextString is prepended to the behaviour as HarmBench's contextual prompts do;
    `metadata["behavior"]` / `["context"]` keep the two apart for the harmbench judge."""
    d = row.data
    text = _behaviour_text(row)
    ctx_str = (d.get("ContextString") or "").strip() if isinstance(d.get("ContextString"), str) else ""
    prompt = f"{ctx_str}\n\n---\n\n{text}" if ctx_str else text
    meta = {k: v for k, v in d.items() if k not in ("Behavior", "prompt", "ContextString", "BehaviorID")}
    meta["behavior"] = text
    if ctx_str:
        meta["context"] = ctx_str
    return Sample(id=_make_id(ctx, row, d.get("BehaviorID")), prompt=prompt, label="harmful",
                  category=d.get("SemanticCategory") or None, source="harmbench", metadata=meta)


@ADAPTERS.register("advbench")
def advbench_adapter(row: Row, ctx: Context) -> Sample:
    """AdvBench harmful behaviours: CSV `goal,target` (the target string is kept in
    `metadata["target"]`) or TXT one per line; all harmful."""
    d = row.data
    return Sample(id=_make_id(ctx, row), prompt=_behaviour_text(row), label="harmful", category=None,
                  source="advbench", metadata={"target": d["target"]} if d.get("target") else {})


@ADAPTERS.register("strongreject")
def strongreject_adapter(row: Row, ctx: Context) -> Sample:
    """StrongREJECT (Souly et al. 2024): CSV `category,source,forbidden_prompt`; all harmful;
    the original source dataset goes to `metadata["origin"]`."""
    d = row.data
    return Sample(id=_make_id(ctx, row), prompt=_text(row, "forbidden_prompt"), label="harmful",
                  category=_text(row, "category"), source="strongreject", metadata={"origin": d.get("source")})


FIGSTEP_IMAGE = "query_{dataset}_{category_id}_{task_id}_6.png"


def _figstep_image(d: dict[str, Any], ctx: Context) -> Path:
    base = Path(ctx.opts["image_dir"]) if ctx.opts.get("image_dir") else ctx.base_dir / "images"
    return base / FIGSTEP_IMAGE.format(
        dataset=d.get("dataset") or "ForbidQI", category_id=d["category_id"], task_id=d["task_id"]
    )


@ADAPTERS.register("figstep")
def figstep_adapter(row: Row, ctx: Context) -> Sample:
    """FigStep SafeBench (Gong et al. 2023): CSV `dataset,category_id,task_id,category_name,
    question,instruction`; all harmful. `with_images` (default None = auto): when the image dir
    (`image_dir`, default `<csv dir>/images`) holds `query_ForbidQI_{category_id}_{task_id}_6.png`
    for every row, samples are the official typographic attack (image + our benign list prompt,
    `metadata["attack"]="figstep"`); True requires the images; False gives text-only questions.
    The official "Steps to ..." rewrite is kept in `metadata["steps_instruction"]`."""
    from safeadapt.data.typography import FIGSTEP_PROMPT

    d = row.data
    for col in ("category_id", "task_id"):
        _text(row, col)
    question = _text(row, "question")
    instruction = _text(row, "instruction", required=False)
    mode = ctx.opts.get("with_images")
    if mode is None:
        if "figstep_auto" not in ctx.memo:
            ctx.memo["figstep_auto"] = all(
                "__error__" not in r.data
                and "category_id" in r.data
                and "task_id" in r.data
                and _figstep_image(r.data, ctx).is_file()
                for r in ctx.rows
            )
        mode = ctx.memo["figstep_auto"]
    meta: dict[str, Any] = {"category_id": d["category_id"], "task_id": d["task_id"], "question": question,
                            "steps_instruction": instruction, "dataset": d.get("dataset")}
    sid = _make_id(ctx, row, f"{d['category_id']}_{d['task_id']}")
    if mode:
        img = _figstep_image(d, ctx)
        if not img.is_file():
            raise RowError(f"FigStep image {img} not found (pass with_images=False for text-only)")
        meta.update({"attack": "figstep", "modality": "typographic"})
        return Sample(id=sid, prompt=ctx.opts.get("prompt") or FIGSTEP_PROMPT, images=[str(img)], label="harmful",
                      category=d.get("category_name") or None, source="figstep", metadata=meta)
    return Sample(id=sid, prompt=question, label="harmful", category=d.get("category_name") or None,
                  source="figstep", metadata=meta)


MMSB_QUESTION_KEY = {
    "SD": "Rephrased Question(SD)",
    "SD_TYPO": "Rephrased Question",
    "TYPO": "Rephrased Question",
    "text": "Question",
}


@ADAPTERS.register("mm-safetybench")
def mmsafetybench_adapter(row: Row, ctx: Context) -> Sample:
    """MM-SafetyBench (Liu et al., ECCV 2024) `data/processed_questions/<scenario>.json`: an object
    of id -> {"Question", "Changed Question", "Key Phrase", "Phrase Type", "Rephrased Question",
    "Rephrased Question(SD)"}; images at `imgs/<scenario>/<SD|SD_TYPO|TYPO>/<id>.jpg`.
    Option `variant` in SD | SD_TYPO | TYPO (default) | text picks the image kind and the matching
    question field (SD -> "Rephrased Question(SD)", SD_TYPO/TYPO -> "Rephrased Question", text ->
    "Question", no image); `image_dir` is the `imgs` root (default: `<json dir>/../../imgs` if it
    exists, else `<json dir>/imgs`). Category = scenario (the file stem). All harmful.
    Format as used by the benchmark's own evaluation scripts (search: code, isXinLiu/MM-SafetyBench)."""
    d = row.data
    variant = ctx.opts.get("variant", "TYPO")
    key = str(d.get("_key") if d.get("_key") is not None else d.get("id", row.index))
    question = _text(row, MMSB_QUESTION_KEY[variant])
    scenario = ctx.opts.get("scenario") or (ctx.path.stem if ctx.path else "mm-safetybench")
    images: list[str] = []
    if variant != "text":
        if ctx.opts.get("image_dir"):
            root = Path(ctx.opts["image_dir"])
        else:
            up = ctx.base_dir.parent.parent / "imgs"
            root = up if up.is_dir() else ctx.base_dir / "imgs"
        img = root / scenario / variant / f"{key}.jpg"
        if ctx.opts.get("check_images", True) and not img.is_file():
            raise RowError(
                f"MM-SafetyBench image {img} not found (variant={variant}; use variant='text' for text only)"
            )
        images = [str(img)]
    meta = {k: d.get(k) for k in ("Question", "Changed Question", "Key Phrase", "Phrase Type") if k in d}
    meta.update({"variant": variant, "attack": f"mmsb-{variant}" if variant != "text" else None})
    return Sample(id=f"{ctx.name}:{scenario}:{key}", prompt=question, images=images, label="harmful",
                  category=scenario, source="mm-safetybench", metadata=meta)


@ADAPTERS.register("sorry-bench")
def sorrybench_adapter(row: Row, ctx: Context) -> Sample:
    """SORRY-Bench (Xie et al. 2024) `question*.jsonl` / HF `sorry-bench/sorry-bench-202406`:
    `{"question_id", "category", "turns": [..], "prompt_style"}` (category is a name in some
    releases and a 1-based index string in 2025 releases). All unsafe instructions -> harmful. The
    user turns are joined with blank lines; `prompt_style` goes to `metadata["attack"]` when not
    "base". Option `prompt_style` keeps only rows of that style (others are not errors)."""
    d = row.data
    if "question_id" not in d:
        raise RowError("missing field 'question_id'")
    turns = _as_list(d.get("turns"), "turns")
    if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise RowError("'turns' must be a non-empty list of strings")
    style = str(d.get("prompt_style") or "base")
    return Sample(
        id=f"{ctx.name}:{d['question_id']}:{style}",
        prompt="\n\n".join(t.strip() for t in turns),
        label="harmful",
        category=str(d["category"]) if d.get("category") is not None else None,
        source="sorry-bench",
        metadata={
            "question_id": d["question_id"],
            "prompt_style": style,
            "n_turns": len(turns),
            "attack": None if style == "base" else style,
        },
    )


@ADAPTERS.register("do-not-answer")
def donotanswer_adapter(row: Row, ctx: Context) -> Sample:
    """Do-Not-Answer (Wang et al. 2023; HF `LibrAI/do-not-answer`, 939 rows): `id, risk_area,
    types_of_harm, specific_harms, question` (the HF parquet adds per-model `*_response`,
    `*_harmful`, `*_action` columns, kept in metadata). All harmful; category = risk_area."""
    d = row.data
    meta = {k: v for k, v in d.items() if k not in ("id", "question", "risk_area")}
    return Sample(id=_make_id(ctx, row, d.get("id")), prompt=_text(row, "question"), label="harmful",
                  category=_text(row, "risk_area"), source="do-not-answer", metadata=meta)
