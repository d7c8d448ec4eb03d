"""Activation-space diagnosis: one batched forward pass with hidden states per model per prompt set
(harmful vs harmless, text or image + text), then per layer the held-out probe accuracy, the
Safety-Layers cosine gap, the refusal direction and, across models, its cosine and projection; and
the causal check: ablating the first model's direction must raise its ASR (judged as eval judges)."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any, Sequence

from safeadapt.core.errors import SafeAdaptError
from safeadapt.diagnose import geometry as geo
from safeadapt.eval.metrics import wilson_ci


def load_prompts(spec: str, *, what: str, limit: int | None = None) -> list[Any]:
    """Samples from `builtin:NAME[:SPLIT]` (built-in suites, test split by default), `samples:FILE`
    (JSONL of safeadapt `Sample` records, metadata kept for the judge) or any spec
    `safeadapt.data.loaders.load_samples` reads; images are checked readable up front."""
    from safeadapt.eval.backends.common import load_image

    if spec.startswith("samples:"):
        samples = _sample_records(Path(spec[len("samples:"):]))
    elif spec.startswith("builtin:"):
        from safeadapt.data.builtin import load_builtin

        name, _, split = spec[len("builtin:"):].partition(":")
        samples = load_builtin(name, split or "test")  # type: ignore[arg-type]
    else:
        from safeadapt.data.loaders import load_samples

        samples = list(load_samples(spec))
    samples = samples[:limit] if limit else samples
    if len(samples) < geo.MIN_PER_CLASS:
        raise SafeAdaptError(
            f"too few {what} prompts in {spec}: {len(samples)} (need at least {geo.MIN_PER_CLASS} per class "
            "for a held-out probe)"
        )
    for s in samples:
        for im in s.images:
            load_image(im, where=f"{what} prompt {s.id}")
    return samples


def _sample_records(path: Path) -> list[Any]:
    import json

    from pydantic import ValidationError

    from safeadapt.data.schema import Sample

    if not path.is_file():
        raise SafeAdaptError(f"{path}: no such file")
    out = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row["images"] = [str(p if Path(p).is_absolute() else path.parent / p) for p in row.get("images", [])]
            out.append(Sample.model_validate(row))
        except (json.JSONDecodeError, ValidationError, AttributeError, TypeError) as e:
            raise SafeAdaptError(f"{path}:{i}: not a sample record ({type(e).__name__})") from None
    return out


def hidden_states(backend: Any, samples: Sequence[Any], batch_size: int) -> Any:
    """Last-prompt-token hidden states [n, L + 1, H] (float32) from one batched forward pass with
    `output_hidden_states` (left padding, so position -1 is every prompt's last token)."""
    import torch

    texts = [backend.render(s.chat(), len(s.images)) for s in samples]
    out = []
    with torch.inference_mode():
        for i in range(0, len(samples), batch_size):
            enc = backend._encode(texts[i:i + batch_size], [list(s.images) for s in samples[i:i + batch_size]], "left")
            res = backend.model(**enc, output_hidden_states=True, use_cache=False)
            out.append(torch.stack([h[:, -1, :].float() for h in res.hidden_states], dim=1))
            del res
    return torch.cat(out)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of k/n (never zero width for n > 0); (0, 1) for n == 0."""
    return wilson_ci(k, n) if n > 0 else (0.0, 1.0)


def causal_check(backend: Any, harmful: Sequence[Any], direction: Any, *, judge: str, max_new_tokens: int,
                 batch_size: int, seed: int) -> dict[str, Any]:
    """ASR on `harmful` before and after ablating `direction` at every layer, judged by `judge`."""
    from safeadapt.diagnose.ablation import ablate_direction
    from safeadapt.eval.judges.registry import get_judge
    from safeadapt.eval.metrics import asr
    from safeadapt.eval.types import DecodingConfig, GenRequest, JudgeItem

    reqs = [GenRequest(key=s.id, messages=s.chat(), images=list(s.images)) for s in harmful]
    dec = DecodingConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed, batch_size=batch_size)
    before = backend.generate(reqs, dec)
    with ablate_direction(backend.model, direction):
        after = backend.generate(reqs, dec)
    j = get_judge(judge)
    cats = [s.category for s in harmful]
    res = {}
    for name, outs in (("before", before), ("after", after)):
        js = j.judge([JudgeItem(prompt=s.user_text(), response=o, sample=s) for s, o in zip(harmful, outs)])
        m = asr(js, cats, seed=seed)["overall"]
        lo, hi = wilson(m["k"], m["n"])
        res[name] = {"value": m["value"], "ci_low": lo, "ci_high": hi, "ci": "wilson 95%", "k": m["k"], "n": m["n"]}
    return {
        "judge": judge,
        "n": len(harmful),
        "asr_before": res["before"],
        "asr_after": res["after"],
        "raised": res["after"]["value"] > res["before"]["value"],
        "examples": [
            {"prompt": s.user_text(), "before": b, "after": a} for s, b, a in list(zip(harmful, before, after))[:3]
        ],
    }


def diagnose_activations(
    refs: Sequence[str | os.PathLike],
    harmful: Sequence[Any],
    harmless: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
    batch_size: int = 32,
    seed: int = 0,
    threads: int | None = 1,
    ablate: bool = True,
    ablate_n: int = 64,
    judge: str = "refusal",
    max_new_tokens: int = 48,
    direction_layer: int | None = None,
    allow_pickle: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (activations.json dict, {label: directions [L+1, H] float64}). One model in memory at a time."""
    from safeadapt.eval.backends.hf import HFBackend

    refs = [str(r) for r in refs]
    labels = list(labels) if labels else [f"M{i}" for i in range(len(refs))]
    if len(labels) != len(refs) or len(set(labels)) != len(labels):
        raise SafeAdaptError(f"--labels: give {len(refs)} distinct labels (got {', '.join(labels)})")
    for what, s in (("harmful", harmful), ("harmless", harmless)):
        if len(s) < geo.MIN_PER_CLASS:
            raise SafeAdaptError(f"too few {what} prompts: {len(s)} (need at least {geo.MIN_PER_CLASS} per class)")
    models, dirs, check = [], {}, None
    for i, (ref, label) in enumerate(zip(refs, labels)):
        t0 = time.perf_counter()
        backend = HFBackend(ref, threads=threads, max_batch=batch_size, allow_pickle=allow_pickle)
        t1 = time.perf_counter()
        h = hidden_states(backend, harmful, batch_size)
        s = hidden_states(backend, harmless, batch_size)
        t2 = time.perf_counter()
        recs, d = geo.layer_table(h, s, seed=seed)
        span = geo.rising_range([r["cos_gap"] for r in recs])
        chosen = direction_layer if direction_layer is not None else geo.choose_direction_layer(recs)
        if not 0 <= chosen < len(recs):
            raise SafeAdaptError(f"--direction-layer {chosen} is outside 0..{len(recs) - 1} for {ref}")
        t3 = time.perf_counter()
        if i == 0 and ablate:
            check = causal_check(backend, list(harmful)[:ablate_n], d[chosen], judge=judge,
                                 max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
            check.update(model=label, layer=chosen)
        dirs[label] = d
        models.append({"label": label, "ref": ref, "n_layers": len(recs) - 1, "hidden": int(h.shape[-1]),
                       "per_layer": recs, "safety_layers": list(span) if span else None, "direction_layer": chosen,
                       "seconds": {"load": t1 - t0, "forward": t2 - t1, "stats": t3 - t2,
                                   "ablation": time.perf_counter() - t3}})
        del backend, h, s
        gc.collect()
    cross = []
    ref0 = labels[0]
    for lab in labels[1:]:
        a, b = dirs[ref0], dirs[lab]
        if a.shape != b.shape:
            cross.append(
                {"pair": f"{ref0}->{lab}", "skipped": f"hidden-state shapes differ {list(a.shape)} vs {list(b.shape)}"}
            )
            continue
        cross.append({"pair": f"{ref0}->{lab}", "per_layer": [
            {"layer": li, "cos_dir": geo.cosine(a[li], b[li]), "proj_ratio": geo.projection_ratio(a[li], b[li])}
            for li in range(a.shape[0])]})
    result = {
        "models": models,
        "cross": cross,
        "ablation": check,
        "prompts": {"harmful": len(harmful), "harmless": len(harmless)},
        "seed": seed,
        "notes": {
            "layer": "hidden-state index: 0 = embeddings, l = output of decoder block l - 1; last prompt token",
            "probe_acc": "held-out (30%, stratified, seeded) accuracy of an L2 logistic regression harmful vs harmless",
            "cos_gap": "mean cos(harmless, harmless) - mean cos(harmless, harmful) (Safety Layers)",
            "safety_layers": "first layer (> 1) where cos_gap rises by > 0.001, extended while it keeps rising",
            "direction": "difference of means harmful - harmless in float64; direction_layer = largest d' in the "
                         "first 80% of layers",
            "cos_dir": "cosine of the first model's direction and this model's, per layer",
            "proj_ratio": "(r_model . r_ref) / ||r_ref||^2: share of the reference's harmful-harmless gap still along "
                          "its direction",
            "ablation": "the direction projected out of every block's input and attention/MLP output of the first "
                        "model",
        },
    }
    return result, dirs


def write_activations(result: dict[str, Any], dirs: dict[str, Any], out: Path) -> list[str]:
    """activations.json, directions.safetensors and the per-layer line plots into existing dir `out`."""
    from safetensors.torch import save_file

    from safeadapt.core.atomic import atomic_write_json
    from safeadapt.diagnose.plots import lines

    figs = []
    models = result["models"]
    span = models[0]["safety_layers"]
    for field, name, ylabel in (("probe_acc", "probe_accuracy.png", "held-out probe accuracy"),
                                ("cos_gap", "cosine_gap.png", "cosine gap (Safety Layers)"),
                                ("separation", "direction_separation.png", "d' along the refusal direction")):
        series = {m["label"]: [(r["layer"], r[field]) for r in m["per_layer"]] for m in models}
        figs.append(lines(series, out / name, title=f"{ylabel} per layer", ylabel=ylabel,
                          span=tuple(span) if span and field == "cos_gap" else None).name)
    usable = [c for c in result["cross"] if "per_layer" in c]
    for field, name, ylabel in (
        ("cos_dir", "refusal_direction_cosine.png", "cosine with the first model's direction"),
        ("proj_ratio", "refusal_projection.png", "projection ratio on the first model's direction"),
    ):
        if usable:
            series = {c["pair"]: [(r["layer"], r[field]) for r in c["per_layer"]] for c in usable}
            figs.append(lines(series, out / name, title=ylabel, ylabel=ylabel).name)
    save_file({k: v.contiguous() for k, v in dirs.items()}, str(out / "directions.safetensors"),
              metadata={"format": "pt", "layout": "[hidden-state index, hidden] float64, harmful - harmless means"})
    result = {**result, "figures": figs}
    from safeadapt.core.provenance import provenance

    result["provenance"] = provenance(config={"models": [m["ref"] for m in models], "seed": result["seed"]})
    atomic_write_json(out / "activations.json", result)
    return figs
