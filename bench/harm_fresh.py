"""Out-of-sample check of the default three-way judge on model families it never saw: replies of
Vicuna-13B, Llama-2-7B-chat, GPT-3.5 and GPT-4 to JailbreakBench's jailbreak attacks (PAIR, GCG,
random search, JBC; the JailbreakBench/artifacts repository, MIT), labelled by reading under the rule
of docs/judges.md (by reference: file, row index and the reply's sha256). bench/data/harm_fresh's
half-0 behaviours (`behaviour_half`) are fit data of the harm weights; bench/data/harm_fresh2, the
test set, holds only half-1 behaviours and rows not in harm_fresh; bench/data/harm_second is a
second, blind reading of 60 harm_fresh2 rows (reader-reader agreement, `--second`).

Per family, the judge's `compliance` against the reading label `harmful` (Wilson 95% interval,
kappa), the old reading "every non-refusal is an attack success", and as anchors JailbreakBench's
own judges on the same rows (`jailbroken`: its Llama-3-70B judge; `jailbroken_llama_guard1`).
The judge is given the behaviour (`goal`) as the request, as HarmBench's classifier is.

    .venv/bin/python bench/harm_fresh.py --artifacts DIR [--labels bench/data/harm_fresh] [--json OUT]
    .venv/bin/python bench/harm_fresh.py --artifacts DIR --labels bench/data/harm_fresh2   # the second set
    .venv/bin/python bench/harm_fresh.py --artifacts DIR --labels bench/data/harm_fresh2 \
        --second bench/data/harm_second/jbb-second-reading.jsonl   # reader-reader agreement
    .venv/bin/python bench/harm_fresh.py --artifacts DIR --half 1   # harm_fresh's rows never fit on
    .venv/bin/python bench/harm_fresh.py --artifacts DIR --draw OUT   # how harm_fresh2 was drawn

DIR is a checkout of github.com/JailbreakBench/artifacts (the folder holding attack-artifacts/)."""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harm_agreement import cell, labels  # noqa: E402  (the in-family scorer's counting, shared)

from safeadapt.eval.judges.refusal import RefusalJudge  # noqa: E402

HERE = Path(__file__).resolve().parent
LABELS = ("harmful", "benign", "refusal", "no_answer")
#: JailbreakBench's 100 behaviours fall in two halves by a hash of the goal: rows of half 0 in
#: bench/data/harm_fresh are dev data (the harm weights are fit on them); half 1 is never fit on,
#: and bench/data/harm_fresh2 holds only half-1 behaviours
DEV_HALF = 0


def behaviour_half(goal: str) -> int:
    """0 or 1 for one JailbreakBench behaviour (sha256 of its goal; label-blind, fixed before any fit)."""
    return int(hashlib.sha256(f"jbb-behaviour:{goal}".encode()).hexdigest()[:8], 16) % 2


#: bench/data/harm_fresh2's families: file stem -> the artifact file name of that model
FRESH2_MODELS = {"vicuna-13b": "vicuna-13b-v1.5", "llama-2-7b": "llama-2-7b-chat-hf",
                 "gpt-3.5": "gpt-3.5-turbo-1106", "gpt-4": "gpt-4-0125-preview"}


def draw(artifacts: Path, family: str, used: set[tuple[str, int]], n: int = 60, jailbroken: int = 40,
         half: int = 1 - DEV_HALF) -> list[dict]:
    """The rows of a fresh set for one family (how bench/data/harm_fresh2 was drawn): replies to
    behaviours of `half` not in `used` (source, row id), in the order of a sha256 of the family and the
    reference; the first `jailbroken` rows JailbreakBench flags jailbroken, the rest not. Label-blind."""
    cand = []
    for src in sorted((artifacts / "attack-artifacts").glob(f"*/*/{FRESH2_MODELS[family]}.json")):
        rel = src.relative_to(artifacts).as_posix()
        if rel.startswith("attack-artifacts/test-artifact/"):
            continue
        for j in json.loads(src.read_text())["jailbreaks"]:
            if behaviour_half(j["goal"]) == half and (rel, j["index"]) not in used and j.get("response"):
                key = hashlib.sha256(f"fresh2:{family}:{rel}:{j['index']}".encode()).hexdigest()
                cand.append((key, rel, j))
    cand.sort(key=lambda t: t[0])
    flagged = [c for c in cand if c[2]["jailbroken"]][:jailbroken]
    pick = sorted(flagged + [c for c in cand if not c[2]["jailbroken"]][:n - len(flagged)], key=lambda t: t[0])
    return [{"family": f"jbb-{family}", "source": rel, "row_id": j["index"], "goal": j["goal"],
             "response": j["response"], "response_sha256": hashlib.sha256(j["response"].encode()).hexdigest()}
            for _, rel, j in pick]


def write_draw(artifacts: Path, out: Path) -> None:
    """OUT/items-<family>.jsonl (n, request, reply: what a reader labels, outside the project) and
    OUT/refs-<family>.jsonl (the references a labels file stores), for every harm_fresh2 family."""
    from safeadapt.core.atomic import atomic_write_text

    if not (artifacts / "attack-artifacts").is_dir():
        raise SystemExit(f"{artifacts}: no attack-artifacts/ folder "
                         "(is --artifacts a JailbreakBench/artifacts checkout?)")
    used = {(r["source"], r["row_id"]) for f in sorted((HERE / "data" / "harm_fresh").glob("*.jsonl"))
            for r in map(json.loads, f.read_text().splitlines())}
    draws = {fam: draw(artifacts, fam, used) for fam in FRESH2_MODELS}  # all drawn before anything is written
    for fam, rows in draws.items():
        atomic_write_text(out / f"items-{fam}.jsonl", "".join(
            json.dumps({"n": i, "request": r["goal"], "reply": r["response"]}) + "\n" for i, r in enumerate(rows)))
        atomic_write_text(out / f"refs-{fam}.jsonl", "".join(
            json.dumps({k: r[k] for k in ("family", "source", "row_id", "response_sha256")}) + "\n" for r in rows))
        print(f"{fam}: {len(rows)} rows -> {out}")


def load(labels_path: Path, artifacts: Path) -> list[dict]:
    """The labelled rows of one file, joined to their artifact (checked by sha256)."""
    cache: dict[str, dict] = {}
    rows = []
    for i, line in enumerate(labels_path.read_text().splitlines(), 1):
        ref = json.loads(line)
        if ref["label"] not in LABELS:
            raise SystemExit(f"{labels_path}:{i}: unknown label {ref['label']!r}")
        src = artifacts / ref["source"]
        if ref["source"] not in cache:
            if not src.is_file():
                raise SystemExit(f"{src}: not found (is --artifacts a JailbreakBench/artifacts checkout?)")
            cache[ref["source"]] = {j["index"]: j for j in json.loads(src.read_text())["jailbreaks"]}
        j = cache[ref["source"]].get(ref["row_id"])
        if j is None or hashlib.sha256((j.get("response") or "").encode()).hexdigest() != ref["response_sha256"]:
            raise SystemExit(f"{labels_path}:{i}: {ref['source']} row {ref['row_id']} is missing or changed (sha256)")
        # the behaviour is the request the judge sees, as HarmBench's classifier is given it
        rows.append({**ref, "prompt": j["goal"], "completion": j["response"], "jbb": bool(j["jailbroken"]),
                     "jbb_guard": bool(j.get("jailbroken_llama_guard1"))})
    return rows


def family(rows: list[dict]) -> dict:
    three, two = labels(RefusalJudge(), rows), labels(RefusalJudge(three_way=False), rows)
    human = [r["label"] == "harmful" for r in rows]
    return {
        "family": rows[0]["family"],
        "labels": dict(Counter(r["label"] for r in rows)),
        "judge": cell(human, [lab == "compliance" for lab in three]),
        "non_refusal_reading": cell(human, [lab == "compliance" for lab in two]),
        "jbb_llama3_70b": cell(human, [r["jbb"] for r in rows]),
        "jbb_llama_guard1": cell(human, [r["jbb_guard"] for r in rows]),
        "refusal_vs_rest": cell([r["label"] == "refusal" for r in rows], [lab == "refusal" for lab in three]),
        "confusion": dict(sorted(Counter(f"{r['label']}->{lab}" for r, lab in zip(rows, three)).items())),
    }


def second_reading(second: Path, labels_dir: Path, artifacts: Path) -> dict:
    """Agreement of a second, independent reading with the first on the rows both labelled (harm 2-way
    and all four labels): how far the reading labels themselves can be trusted."""
    first = {(r["source"], r["row_id"]): r for f in sorted(labels_dir.glob("*.jsonl")) for r in load(f, artifacts)}
    pairs = []
    for r in load(second, artifacts):
        a = first.get((r["source"], r["row_id"]))
        if a is None:
            raise SystemExit(f"{second}: {r['source']} row {r['row_id']} is not in {labels_dir}")
        pairs.append((a["label"], r["label"]))
    out = cell([a == "harmful" for a, _ in pairs], [b == "harmful" for _, b in pairs])
    out["four_way"] = sum(a == b for a, b in pairs) / len(pairs)
    out["disagreements"] = dict(Counter(f"{a}/{b}" for a, b in pairs if a != b))
    return out


def print_second_reading(second: Path, labels_dir: Path, artifacts: Path) -> None:
    s = second_reading(second, labels_dir, artifacts)
    print(f"second reading vs first, {s['n']} rows: harm agreement {s['agreement']:.3f} "
          f"[{s['wilson95'][0]:.3f}-{s['wilson95'][1]:.3f}], kappa {s['kappa']:.3f}, four labels {s['four_way']:.3f}; "
          f"disagreements (first/second) {s['disagreements']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, type=Path)
    ap.add_argument("--labels", default=HERE / "data" / "harm_fresh", type=Path)
    ap.add_argument("--json", default=None)
    ap.add_argument("--second", default=None, type=Path,
                    help="a second reading of some rows (bench/data/harm_second/*.jsonl): "
                         "print reader-reader agreement")
    ap.add_argument("--half", default=None, type=int, choices=(0, 1),
                    help="only rows of this behaviour half (0: the harm weights' fit rows in harm_fresh)")
    ap.add_argument("--draw", default=None, type=Path,
                    help="write a fresh draw (items to read, references) to this folder, as harm_fresh2 was drawn")
    a = ap.parse_args()
    if a.draw:
        write_draw(a.artifacts, a.draw)
        return
    if a.second:
        print_second_reading(a.second, a.labels, a.artifacts)
        return
    fams = []
    for f in sorted(glob.glob(str(a.labels / "*.jsonl"))):
        rows = [r for r in load(Path(f), a.artifacts) if a.half is None or behaviour_half(r["prompt"]) == a.half]
        if rows:
            fams.append(family(rows))
    allrows = sum((f["judge"]["n"] for f in fams), 0)
    agree = sum(f["judge"]["agreement"] * f["judge"]["n"] for f in fams) / max(1, allrows)
    print(f"harm, 2-way: `compliance` (or the anchor's jailbroken flag) vs reading label `harmful`; {allrows} rows"
          + (f" of behaviour half {a.half}" if a.half is not None else "") + f"; judge agreement over all {agree:.3f}")
    print(f"{'family':12s} {'n':>3s} {'judge':>6s} {'wilson95':>13s} {'kappa':>6s} {'non-ref':>7s} {'JBB-L3':>6s} "
          f"{'JBB-LG':>6s} {'refusal':>7s}  labels")
    for f in fams:
        j = f["judge"]
        print(f"{f['family']:12s} {j['n']:3d} {j['agreement']:6.3f} {j['wilson95'][0]:6.3f}-{j['wilson95'][1]:5.3f} "
              f"{j['kappa']:6.3f} {f['non_refusal_reading']['agreement']:7.3f} {f['jbb_llama3_70b']['agreement']:6.3f} "
              f"{f['jbb_llama_guard1']['agreement']:6.3f} {f['refusal_vs_rest']['agreement']:7.3f}  {f['labels']}")
    print("\nconfusion (reading label -> judge label)")
    for f in fams:
        print(f"{f['family']:12s} {f['confusion']}")
    if a.json:
        from safeadapt.core.atomic import atomic_write_json

        atomic_write_json(a.json, {"families": fams})


if __name__ == "__main__":
    main()
