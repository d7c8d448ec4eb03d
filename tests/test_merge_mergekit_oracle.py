"""mergekit 0.1.5 as a correctness oracle for `safeadapt merge`: on tiny seeded Llama checkpoints,
linear / task_arithmetic / ties outputs must equal mergekit's bit for bit (same dtype), and DARE's
kept fraction must match the density. Runs where the venv `.bench-venv-mergekit` exists (.ci/run
builds it; the skip message gives the commands); skips otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _common import (  # noqa: E402
    DEFAULT_MERGEKIT_PYTHON,
    TINY,
    build_family,
    compare_dirs,
    merge_config,
    mergekit_available,
    run_mergekit_batch,
    write_yaml,
)

_WHY = mergekit_available(DEFAULT_MERGEKIT_PYTHON)
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"mergekit oracle unavailable: {_WHY}")


def _cases(fams: dict[str, dict[str, Path]]) -> dict[str, dict]:
    """name -> mergekit-style config. Uneven weights and densities, normalize on and off."""
    out: dict[str, dict] = {}
    for dt, f in fams.items():
        b, f1, f2 = f["base"], f["ft1"], f["ft2"]
        out[f"linear_{dt}"] = merge_config("linear", None, [(b, {"weight": 0.2}), (f1, {"weight": 0.5}),
                                                            (f2, {"weight": 0.3})], dtype=dt)
        out[f"linear_nonorm_{dt}"] = merge_config("linear", None, [(f1, {"weight": 0.6}), (f2, {"weight": 0.7})],
                                                  dtype=dt, parameters={"normalize": False})
        out[f"task_arithmetic_{dt}"] = merge_config(
            "task_arithmetic", b, [(f1, {"weight": 0.7}), (f2, {"weight": 0.5})], dtype=dt
        )
        out[f"task_arithmetic_norm_{dt}"] = merge_config(
            "task_arithmetic", b, [(f1, {"weight": 0.7}), (f2, {"weight": 0.5})], dtype=dt,
            parameters={"normalize": True, "lambda": 0.8})
        out[f"ties_{dt}"] = merge_config("ties", b, [(f1, {"weight": 0.7, "density": 0.5}),
                                                     (f2, {"weight": 0.4, "density": 0.3})], dtype=dt)
        out[f"ties_nonorm_{dt}"] = merge_config("ties", b, [(f1, {"weight": 1.0, "density": 0.2}),
                                                            (f2, {"weight": 0.6, "density": 0.7})],
                                                dtype=dt, parameters={"normalize": False})
    # density * numel < 1 on the 64-element norm vectors: mergekit still keeps the largest entry
    out["ties_low_density_float32"] = merge_config("ties", fams["float32"]["base"], [
        (fams["float32"]["ft1"], {"weight": 0.7, "density": 0.01}),
        (fams["float32"]["ft2"], {"weight": 0.4, "density": 0.3})], dtype="float32")
    # DARE: one fine-tuned model, so sign election keeps every surviving entry
    out["dare_ties_float32"] = merge_config("dare_ties", fams["float32"]["base"],
                                            [(fams["float32"]["ft1"], {"weight": 1.0, "density": 0.4})],
                                            dtype="float32")
    return out


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> dict[str, tuple[Path, Path, dict]]:
    """Run every case through both tools once: name -> (safeadapt_out, mergekit_out, config)."""
    from safeadapt.repair.merge import engine
    from safeadapt.repair.merge.api import merge

    root = tmp_path_factory.mktemp("oracle")
    fams = {dt: build_family(root / "models" / dt, TINY, dt, seed=3) for dt in ("bfloat16", "float32")}
    cases = _cases(fams)
    jobs = []
    result = {}
    for name, cfg in cases.items():
        path = write_yaml(cfg, root / "cfg" / f"{name}.yaml")
        sa, mk = root / "sa" / name, root / "mk" / name
        # stream every matrix in uneven row blocks (the default thresholds only chunk >= 2M-element
        # tensors), so the chunked path and TIES' kthvalue / argsort masks face the oracle too
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine, "MIN_CHUNKED_ELEMS", 4096)
            mp.setattr(engine, "CHUNK_ELEMS", 1000)
            merge(str(path), sa, seed=0)
        jobs.append({"config": str(path), "out": str(mk), "seed": 0})
        result[name] = (sa, mk, cfg)
    run_mergekit_batch(DEFAULT_MERGEKIT_PYTHON, jobs)
    return result


EXACT = [f"{m}_{dt}" for dt in ("bfloat16", "float32")
         for m in ("linear", "linear_nonorm", "task_arithmetic", "task_arithmetic_norm", "ties", "ties_nonorm")]


@pytest.mark.parametrize("case", EXACT + ["ties_low_density_float32"])
def test_matches_mergekit_exactly(merged, case):
    sa, mk, _ = merged[case]
    c = compare_dirs(sa, mk)
    assert c["n_tensors"] == 2 + 9 * TINY.layers + 1, c  # embed, lm_head, 9 per layer, final norm
    assert not c["only_a"] and not c["only_b"], c
    assert not c["dtype_mismatch"] and not c["shape_mismatch"], c
    assert c["max_abs"] == 0.0, (
        f"{case}: max |safeadapt - mergekit| = {c['max_abs']:.3g} at {c['worst']}; "
        f"{c['n_diff_tensors']}/{c['n_tensors']} tensors, {c['n_diff_elems']}/{c['n_elems']} elements differ")


def test_merge_is_not_trivial(merged):
    """Guard against a vacuous oracle: TIES must differ from plain task arithmetic and from base."""
    ties, _, cfg = merged["ties_float32"]
    ta, _, _ = merged["task_arithmetic_float32"]
    assert compare_dirs(ties, ta)["max_abs"] > 1e-4
    assert compare_dirs(ties, Path(cfg["base_model"]))["max_abs"] > 1e-4


def test_dare_kept_fraction_matches_density(merged):
    import torch
    from safetensors import safe_open

    sa, mk, cfg = merged["dare_ties_float32"]
    base, ft = Path(cfg["base_model"]), Path(cfg["models"][0]["model"])

    def load(d: Path) -> dict[str, torch.Tensor]:
        out = {}
        for f in sorted(d.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as h:
                out.update({k: h.get_tensor(k) for k in h.keys()})
        return out

    b, t = load(base), load(ft)
    stats = {}
    for tool, d in (("safeadapt", sa), ("mergekit", mk)):
        o = load(d)
        changed = torch.cat([(t[k] != b[k]).reshape(-1) for k in b])
        kept = torch.cat([(o[k] != b[k]).reshape(-1) for k in b])
        # kept entries are rescaled task-vector entries: |out - base| ~ |ft - base| / density
        ratio = torch.cat([((o[k] - b[k]).abs().reshape(-1)[(o[k] != b[k]).reshape(-1)]) for k in b]).mean() / \
            torch.cat([(t[k] - b[k]).abs().reshape(-1)[(t[k] != b[k]).reshape(-1)] for k in b]).mean()
        assert bool((kept & ~changed).sum() == 0), f"{tool} changed entries the fine-tune did not touch"
        stats[tool] = (float(kept.sum() / changed.sum()), float(ratio))
    for tool, (frac, ratio) in stats.items():
        assert abs(frac - 0.4) < 0.01, (tool, stats)
        assert abs(ratio - 1 / 0.4) < 0.1, (tool, stats)
    assert abs(stats["safeadapt"][0] - stats["mergekit"][0]) < 0.01, stats
