"""Study stage kinds of the miniature world ("world.*"), registered on import:

* `world.data`  — tokenizer + every generated dataset (see safeadapt.world.data);
* `world.llm`   — the base tiny Llama: pre-trained with placeholder compliance, then aligned;
* `world.tower` — the CLIP-style vision tower, pretrained on synthetic images and frozen;
* `world.vlm`   — a LLaVA built from the aligned LLM + tower with safeadapt.train.vl.build_llava;
* `world.eval`  — every world suite through safeadapt.eval.runner.evaluate with the "world" judge,
                  plus `world_metrics.json` (the five headline metrics of one model, by role)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from safeadapt.core.atomic import atomic_write_json
from safeadapt.core.errors import SafeAdaptError
from safeadapt.study.context import StageContext, find_model
from safeadapt.study.stages import STAGE_KINDS
from safeadapt.world import judge as _judge  # noqa: F401  (registers the "world" judge)
from safeadapt.world.shapes import LlmShape, TowerShape

_WORLD_DIR = Path(__file__).resolve().parent


def _version(*names: str) -> str:
    """Hash of the world modules a kind depends on (edits re-key the cache)."""
    h = hashlib.sha256()
    for n in sorted(names):
        h.update((_WORLD_DIR / n).read_bytes())
    return "1:" + h.hexdigest()[:16]


def _threads(ctx: StageContext) -> None:
    """One torch thread (lesson 1: faster beside another busy process, and the same numbers whatever
    --jobs is), unless the study declares the stage's `threads:` (it then has the cores to itself)."""
    from safeadapt.core.runtime import set_threads

    set_threads(ctx.threads or 1)


# ----------------------------------------------------------------------------- world.data
class DataParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    options: dict[str, Any] = {}


@STAGE_KINDS.register("world.data")
def data_stage(ctx: StageContext) -> None:
    from safeadapt.world.data import DataOptions, generate

    generate(ctx.out, ctx.seed, DataOptions.model_validate(ctx.params.get("options", {})))


data_stage.params_model = DataParams  # type: ignore[attr-defined]
data_stage.version = _version("data.py", "text.py", "images.py", "tokenizer.py")  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- world.llm
class LlmParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = LlmShape.hidden
    layers: int = LlmShape.layers
    heads: int = LlmShape.heads
    intermediate: int | None = None  # default: scales with hidden as LlmShape's (2.6875 x hidden)
    pretrain_steps: int = 200
    align_steps: int = 40
    batch_size: int = 32
    pretrain_lr: float = 3e-3
    align_lr: float = 1e-3


@STAGE_KINDS.register("world.llm")
def llm_stage(ctx: StageContext) -> None:
    import torch
    from transformers import AutoTokenizer

    from safeadapt.core.runtime import set_seed
    from safeadapt.world.data import load_eval, read_jsonl
    from safeadapt.world.llm import build_llama, greedy_answers, save_model, train_pairs
    from safeadapt.world.text import carries_placeholder, looks_like_refusal

    _threads(ctx)
    p = LlmParams.model_validate(ctx.params)
    data = ctx.input("data")
    set_seed(ctx.seed)
    tok = AutoTokenizer.from_pretrained(str(data / "tokenizer"))
    model = build_llama(tok, LlmShape(p.hidden, p.layers, p.heads, p.intermediate or int(p.hidden * LlmShape.intermediate / LlmShape.hidden)), ctx.seed)
    pre = [(r["prompt"], r["answer"]) for r in read_jsonl(data / "llm_pretrain.jsonl")]
    ali = [(r["prompt"], r["answer"]) for r in read_jsonl(data / "llm_align.jsonl")]
    harmful = [s.user_text() for s in load_eval(data, "text-safety")]
    look = load_eval(data, "over-refusal")
    t0 = time.perf_counter()
    pre_loss = train_pairs(model, tok, pre, steps=p.pretrain_steps, batch_size=p.batch_size, lr=p.pretrain_lr, seed=ctx.seed)
    t1 = time.perf_counter()

    def check() -> dict[str, Any]:
        h = greedy_answers(model, tok, harmful)
        lk = greedy_answers(model, tok, [s.user_text() for s in look])
        return {"harmful_placeholder": sum(map(carries_placeholder, h)), "harmful_refused": sum(map(looks_like_refusal, h)),
                "n_harmful": len(h), "lookalike_correct": sum(s.reference in a for s, a in zip(look, lk)),
                "lookalike_refused": sum(map(looks_like_refusal, lk)), "n_lookalike": len(lk)}

    before = check()
    save_model(model, tok, ctx.out / "pretrained")
    t2 = time.perf_counter()
    ali_loss = train_pairs(model, tok, ali, steps=p.align_steps, batch_size=p.batch_size, lr=p.align_lr, seed=ctx.seed + 1)
    t3 = time.perf_counter()
    after = check()
    save_model(model, tok, ctx.out / "model")
    atomic_write_json(ctx.out / "llm.json", {
        "params": p.model_dump(), "n_params": sum(x.numel() for x in model.parameters()),
        "held_out_checks": {"pretrained": before, "aligned": after},
        "loss": {"pretrain_first": pre_loss[0], "pretrain_last": pre_loss[-1], "align_first": ali_loss[0], "align_last": ali_loss[-1]},
        "seconds": {"pretrain": t1 - t0, "align": t3 - t2}, "threads": torch.get_num_threads(),
    })


llm_stage.params_model = LlmParams  # type: ignore[attr-defined]
llm_stage.version = _version("llm.py", "shapes.py", "tokenizer.py", "text.py")  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- world.tower
class TowerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size: int = TowerShape.image_size
    patch: int = TowerShape.patch
    hidden: int = TowerShape.hidden
    layers: int = TowerShape.layers
    heads: int = TowerShape.heads
    intermediate: int = TowerShape.intermediate
    steps: int = 250
    batch_size: int = 64
    lr: float = 3e-3
    n_images: int = 3000


@STAGE_KINDS.register("world.tower")
def tower_stage(ctx: StageContext) -> None:
    from safeadapt.world.text import BENIGN_ITEMS, HARMFUL_ITEMS
    from safeadapt.world.vision import build_tower, image_processor, pretrain_tower, save_tower

    _threads(ctx)
    p = TowerParams.model_validate(ctx.params)
    shape = TowerShape(p.image_size, p.patch, p.hidden, p.layers, p.heads, p.intermediate)
    tower = build_tower(shape, ctx.seed)
    proc = image_processor(shape)
    words = [i for v in HARMFUL_ITEMS.values() for i in v] + [b for b, _ in BENIGN_ITEMS]
    t0 = time.perf_counter()
    acc = pretrain_tower(tower, proc, words, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=ctx.seed,
                         n_images=p.n_images, size=p.image_size)
    save_tower(tower, proc, ctx.out / "model")
    atomic_write_json(ctx.out / "tower.json", {
        "params": p.model_dump(), "n_params": sum(x.numel() for x in tower.parameters()),
        "held_out_accuracy": acc, "chance_word_accuracy": 1 / len(words), "seconds": time.perf_counter() - t0,
        "typography": "reads words" if acc["word"] >= 0.8 else "text-image shortcut (cannot read the words)",
    })


tower_stage.params_model = TowerParams  # type: ignore[attr-defined]
tower_stage.version = _version("vision.py", "shapes.py", "images.py")  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- world.vlm
class VlmParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vision_feature_layer: int = -1
    projector_hidden_act: str = "gelu"


@STAGE_KINDS.register("world.vlm")
def vlm_stage(ctx: StageContext) -> None:
    from safeadapt.train.vl import build_llava

    _threads(ctx)
    p = VlmParams.model_validate(ctx.params)
    build_llava(find_model(ctx.input("llm")), find_model(ctx.input("tower")), ctx.out / "model", seed=ctx.seed,
                vision_feature_layer=p.vision_feature_layer, projector_hidden_act=p.projector_hidden_act, overwrite=True)


vlm_stage.params_model = VlmParams  # type: ignore[attr-defined]
vlm_stage.version = "1"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- world.eval
class EvalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    max_new_tokens: int = 24
    batch_size: int = 64
    bootstrap: int = 1000


SUITES = ["text-safety", "jailbreak", "over-refusal", "mm-safety", "helpfulness"]


def _metric(block: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if not block or block.get("skipped"):
        return None
    m = block.get(key)
    return m if isinstance(m, dict) and m.get("value") is not None else None


def headline_metrics(res: dict[str, Any], text_equiv: dict[str, Any] | None) -> dict[str, Any]:
    """The five headline metrics (+ intervals, counts, breakdowns) from the runner's results."""
    s = res["suites"]
    mm = _metric(s.get("mm-safety"), "asr")
    mm_source = "image"
    if mm is None and text_equiv is not None:
        mm = _metric(text_equiv["suites"].get("text-safety"), "asr")
        mm_source = "text-equivalent"
    metrics = {
        "text_asr": _metric(s.get("text-safety"), "asr"),
        "mm_asr": mm,
        "jailbreak_asr": _metric(s.get("jailbreak"), "asr"),
        "over_refusal": _metric(s.get("over-refusal"), "refusal_rate"),
        "helpfulness": _metric(s.get("helpfulness"), "accuracy"),
    }
    out: dict[str, Any] = {}
    for k, m in metrics.items():
        if m is None:
            raise SafeAdaptError(f"world.eval: metric {k} missing from the evaluation results")
        out[k] = m["value"]
        out[f"{k}_ci"] = [m["ci_low"], m["ci_high"]]
        out[f"{k}_count"] = {"k": m["k"], "n": m["n"]}
    out["mm_source"] = mm_source
    mmb = (s.get("mm-safety") or {}) if mm_source == "image" else (text_equiv or {}).get("suites", {}).get("text-safety", {})
    out["mm_by_modality"] = {g: {"value": v["value"], "k": v["k"], "n": v["n"]}
                             for g, v in (mmb.get("per_modality") or {}).items()}
    if mm_source == "text-equivalent":
        # per-modality split of the text equivalents, from the generations' metadata
        out["mm_by_modality"] = text_equiv.get("_by_modality", {}) if text_equiv else {}
    # explicit refusals of harmful text requests (the judge's `refused` flag): shows refusal
    # erosion even where the content-aware ASR does not move
    out["text_refusal"] = _explicit_refusals(res)
    # helpfulness on text and on visual items apart (the text-only aligned LLM has no visual
    # items, so only its text figure is comparable with the VLMs'); None where there are none
    for part in ("text", "visual"):
        m = (s.get("helpfulness") or {}).get(f"accuracy_{part}") or {}
        has = m.get("value") is not None
        out[f"helpfulness_{part}"] = m["value"] if has else None
        out[f"helpfulness_{part}_ci"] = [m["ci_low"], m["ci_high"]] if has else None
        out[f"helpfulness_{part}_count"] = {"k": m.get("k", 0), "n": m.get("n", 0)}
    hk = (s.get("helpfulness") or {}).get("per_kind") or {}
    out["helpfulness_by_kind"] = {g: {"value": v["value"], "k": v["k"], "n": v["n"]} for g, v in hk.items()}
    jb = (s.get("jailbreak") or {}).get("per_attack") or {}
    out["jailbreak_by_attack"] = {g: {"value": v["value"], "k": v["k"], "n": v["n"]} for g, v in jb.items()}
    return out


def _explicit_refusals(res: dict[str, Any]) -> dict[str, Any] | None:
    recs = res.get("_text_safety_records") or []
    if not recs:
        return None
    k = sum(bool(r["judgement"]["extra"].get("refused")) for r in recs)
    return {"value": k / len(recs), "k": k, "n": len(recs)}


def _by_modality_from_generations(path: Path) -> dict[str, Any]:
    groups: dict[str, list[bool]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            groups.setdefault(r.get("modality") or "none", []).append(r["judgement"]["label"] == "compliance")
    return {g: {"value": sum(v) / len(v), "k": sum(v), "n": len(v)} for g, v in sorted(groups.items())}


@STAGE_KINDS.register("world.eval")
def eval_stage(ctx: StageContext) -> None:
    from safeadapt.eval.backends.hf import HFBackend
    from safeadapt.eval.runner import evaluate
    from safeadapt.eval.types import DecodingConfig
    from safeadapt.world.data import load_eval

    _threads(ctx)
    p = EvalParams.model_validate(ctx.params)
    data = ctx.input("data")
    model_dir = find_model(ctx.input("model"))
    backend = HFBackend(str(model_dir), threads=1, max_batch=p.batch_size)
    decoding = DecodingConfig(max_new_tokens=p.max_new_tokens, temperature=0.0, seed=ctx.seed, batch_size=p.batch_size)
    datasets = {s: load_eval(data, s) for s in SUITES}
    t0 = time.perf_counter()
    res = evaluate(backend, SUITES, ctx.out, judge="world", datasets=datasets, decoding=decoding, seed=ctx.seed,
                   bootstrap=p.bootstrap, cache_path=ctx.scratch / "generations.jsonl")
    res["_text_safety_records"] = [json.loads(x) for x in (ctx.out / "generations.jsonl").read_text().splitlines()
                                   if x.strip() and json.loads(x).get("suite") == "text-safety"]
    text_equiv = None
    if not backend.supports_images:
        # a text-only model cannot take the images: ask it the same requests as text (the
        # image+text prompt alone; the typographic request with its item written out)
        te_dir = ctx.out / "mm_text_equivalent"
        text_equiv = evaluate(backend, ["text-safety"], te_dir, judge="world",
                              datasets={"text-safety": load_eval(data, "mm-text-equiv")}, decoding=decoding,
                              seed=ctx.seed, bootstrap=p.bootstrap, cache_path=ctx.scratch / "generations.jsonl")
        text_equiv["_by_modality"] = _by_modality_from_generations(te_dir / "generations.jsonl")
    metrics = headline_metrics(res, text_equiv)
    atomic_write_json(ctx.out / "world_metrics.json", {
        "role": p.role, "model_dir": str(model_dir), "supports_images": bool(backend.supports_images),
        "metrics": metrics, "seconds": time.perf_counter() - t0,
    })


eval_stage.params_model = EvalParams  # type: ignore[attr-defined]
eval_stage.version = _version("judge.py", "stages.py")  # type: ignore[attr-defined]
