"""Merge methods on small hand-computed tensors, and mergekit's parameter evaluation rules."""

from __future__ import annotations

import math

import pytest
import torch

from safeadapt.core.errors import SafeAdaptError
from safeadapt.repair.merge.config import evaluate_setting, load_config, resolve_params
from safeadapt.repair.merge.methods import METHODS, TensorJob


def job(method, tensors, base, params=None, tparams=None, seed=0):
    m = METHODS.get(method)
    g = {k: v for k, v in m.params.items()}
    g.update(params or {})
    tp = tparams or [{} for _ in tensors]
    full = []
    for d in tp:
        x = {k: v for k, v in m.tensor_params.items()}
        x.update(d)
        full.append(x)
    return m(TensorJob("t", [torch.tensor(x, dtype=torch.float32) for x in tensors], base, g, full, seed))


def test_registry_has_all_methods():
    assert METHODS.names() == ["breadcrumbs", "dare_linear", "dare_ties", "linear", "slerp", "task_arithmetic", "ties"]
    with pytest.raises(SafeAdaptError, match="unknown merge method 'nope'"):
        METHODS.get("nope")


def test_linear_normalised_and_not():
    out = job("linear", [[1.0, 2.0], [3.0, -2.0]], None, tparams=[{"weight": 1.0}, {"weight": 3.0}])
    assert out.tolist() == [2.5, -1.0]
    out = job("linear", [[1.0, 2.0], [3.0, -2.0]], None, {"normalize": False}, [{"weight": 1.0}, {"weight": 3.0}])
    assert out.tolist() == [10.0, -4.0]


def test_task_arithmetic():
    out = job("task_arithmetic", [[2, 0, 1], [1, 3, -1], [1, 1, 1]], 2,
              tparams=[{"weight": 0.5}, {"weight": 1.0}, {}])
    assert out.tolist() == [1.5, 2.5, -1.0]
    # normalize divides by the sum of weights (1.5)
    out = job("task_arithmetic", [[2, 0, 1], [1, 3, -1], [1, 1, 1]], 2, {"normalize": True},
              [{"weight": 0.5}, {"weight": 1.0}, {}])
    assert torch.allclose(out, torch.tensor([1 + 0.5 / 1.5, 1 + 1.5 / 1.5, 1 - 2 / 1.5]))


def test_ties_trim_elect_disjoint_mean():
    base = [0, 0, 0, 0, 0, 0]
    m1 = [3, -1, 0.5, 2, 2, 1]
    m2 = [-1, -2, 1, -4, -1, -3]
    # density 1: no trimming; sign election by weighted sum; mean over agreeing weights
    out = job("ties", [m1, m2, base], 2, tparams=[{"weight": 1.0}, {"weight": 1.0}, {}])
    # col0: 3-1=2>0 keep 3 -> 3; col1: both neg -> (-1-2)/2; col2: both pos -> .75; col3: -2 -> -4;
    # col4: 1>0 -> 2; col5: -2 -> -3
    assert out.tolist() == [3.0, -1.5, 0.75, -4.0, 2.0, -3.0]
    # density 0.5 on 6 entries keeps the 3 largest magnitudes of each task vector
    out = job("ties", [m1, m2, base], 2, tparams=[{"weight": 0.5, "density": 0.5}, {"weight": 1.0, "density": 0.5}, {}])
    # m1 trimmed: [3,0,0,2,2,0] w=.5 -> [1.5,0,0,1,1,0]; m2 trimmed: [0,-2,0,-4,0,-3]
    # sum: [1.5,-2,0,-3,1,-3] -> signs [+,-,+,-,+,-]; mixed [1.5,-2,0,-4,1,-3]; divisor [.5,1,1(0),1,.5,1]
    assert out.tolist() == [3.0, -2.0, 0.0, -4.0, 2.0, -3.0]
    out = job("ties", [m1, m2, base], 2, {"normalize": False},
              [{"weight": 0.5, "density": 0.5}, {"weight": 1.0, "density": 0.5}, {}])
    assert out.tolist() == [1.5, -2.0, 0.0, -4.0, 1.0, -3.0]


def test_dare_is_seeded_rescaled_and_keeps_density():
    torch.manual_seed(0)
    n = 20000
    delta = torch.randn(n)
    tensors = [delta.tolist(), [0.0] * n]
    a = job("dare_linear", tensors, 1, tparams=[{"weight": 1.0, "density": 0.3}, {}], seed=5)
    b = job("dare_linear", tensors, 1, tparams=[{"weight": 1.0, "density": 0.3}, {}], seed=5)
    c = job("dare_linear", tensors, 1, tparams=[{"weight": 1.0, "density": 0.3}, {}], seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    kept = a != 0
    assert 0.28 < kept.float().mean().item() < 0.32
    # rescale (mergekit 0.1.5): survivors scaled so the L1 norm equals the unpruned delta's
    scale = delta.abs().sum() / delta[kept].abs().sum()
    assert torch.allclose(a[kept], delta[kept] * scale)
    assert a.abs().sum().item() == pytest.approx(delta.abs().sum().item(), rel=1e-5)
    plain = job("dare_linear", tensors, 1, {"rescale": False}, [{"weight": 1.0, "density": 0.3}, {}], seed=5)
    assert torch.equal(plain[kept], delta[kept]) and torch.equal(plain != 0, kept)
    # the global RNG is untouched
    torch.manual_seed(1)
    x = torch.rand(1)
    torch.manual_seed(1)
    job("dare_ties", tensors, 1, tparams=[{"weight": 1.0, "density": 0.3}, {}], seed=5)
    assert torch.equal(torch.rand(1), x)
    # density 1 equals task arithmetic
    full = job("dare_ties", [[1, -2], [3, 1], [0, 0]], 2, tparams=[{"weight": 1.0}, {"weight": 1.0}, {}])
    assert full.tolist() == [4.0, -2.0]


def test_slerp_orthogonal_and_colinear():
    out = job("slerp", [[1.0, 0.0], [0.0, 1.0]], 0, {"t": 0.5})
    assert torch.allclose(out, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]), atol=1e-6)
    out = job("slerp", [[0.0, 1.0], [1.0, 0.0]], 1, {"t": 0.0})  # t=0 is the base (index 1)
    assert torch.allclose(out, torch.tensor([1.0, 0.0]), atol=1e-6)
    out = job("slerp", [[1.0, 1.0], [2.0, 2.0]], 0, {"t": 0.25})  # colinear -> lerp
    assert torch.allclose(out, torch.tensor([1.25, 1.25]))


def test_breadcrumbs_drops_outliers_and_smallest():
    delta = [float(i) for i in range(1, 11)]
    out = job("breadcrumbs", [delta, [0.0] * 10], 1, tparams=[{"weight": 1.0, "density": 0.5, "gamma": 0.1}, {}])
    assert out.tolist() == [0, 0, 0, 0, 5, 6, 7, 8, 9, 0]
    # gamma larger than 1 - density: fewer outliers dropped so that `density` is kept
    out = job("breadcrumbs", [delta, [0.0] * 10], 1, tparams=[{"weight": 1.0, "density": 0.5, "gamma": 0.8}, {}])
    assert out.tolist() == [1, 2, 3, 4, 5, 0, 0, 0, 0, 0]


def test_ties_rescale_restores_l1_and_keeps_at_least_one():
    # rescale=True: each trimmed task vector is scaled back to its L1 norm before election
    out = job("ties", [[4.0, -1.0, 1.0, 2.0], [0.0] * 4], 1, {"rescale": True}, [{"weight": 1.0, "density": 0.5}, {}])
    assert out.tolist() == pytest.approx([4.0 * 8 / 6, 0.0, 0.0, 2.0 * 8 / 6])
    # density small but positive keeps one entry (mergekit: k = max(1, int(density * n)))
    out = job("ties", [[4.0, -1.0, 1.0, 2.0], [0.0] * 4], 1, tparams=[{"weight": 1.0, "density": 0.1}, {}])
    assert out.tolist() == [4.0, 0.0, 0.0, 0.0]


def test_evaluate_setting_gradients_and_filters():
    cfg, _ = load_config(
        {
            "merge_method": "ties",
            "base_model": "b",
            "models": [
                {
                    "model": "a",
                    "parameters": {
                        "weight": [{"filter": "self_attn", "value": 0.5}, {"value": [0.0, 1.0]}],
                        "density": 0.7,
                    },
                }
            ],
            "parameters": {"normalize": False, "density": [{"filter": "mlp", "value": 0.2}]},
        }
    )
    m = cfg.method()
    g, tp = resolve_params(cfg, m, ["a", "b"], "b", ("model.layers.1.self_attn.q_proj.weight",), 0.5)
    assert g["normalize"] is False and tp[0] == {"weight": 0.5, "density": 0.7}
    g, tp = resolve_params(cfg, m, ["a", "b"], "b", ("model.layers.1.mlp.up_proj.weight",), 0.25)
    assert tp[0]["weight"] == 0.25
    # base gets defaults; a global filtered setting applies only where the filter matches
    assert tp[1] == {"weight": None, "density": 0.2}
    _, tp = resolve_params(cfg, m, ["a", "b"], "b", ("model.norm.weight",), 1.0)
    assert tp[1]["density"] == 1.0
    assert evaluate_setting([0.2, 0.8, 0.2], ("x",), 0.25) == pytest.approx(0.5)
    assert evaluate_setting([0.2, 0.8, 0.2], ("x",), 1.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "cfg,msg",
    [
        ({"merge_method": "tie", "models": [{"model": "a"}]}, "unknown merge method 'tie'"),
        (
            {"merge_method": "ties", "base_model": "b", "models": [{"model": "a", "parameters": {"wieght": 1}}]},
            "unknown parameter 'wieght' for model a",
        ),
        (
            {"merge_method": "ties", "base_model": "b", "models": [{"model": "a"}], "parameters": {"t": 1}},
            "unknown parameter 't'",
        ),
        ({"merge_method": "ties", "models": [{"model": "a"}]}, "needs base_model"),
        ({"merge_method": "linear", "slices": [{"sources": []}]}, "slices"),
        ({"merge_method": "linear", "models": [{"model": "a"}], "colour": 1}, "colour"),
        (
            {"merge_method": "ties", "base_model": "b", "models": [{"model": "a", "parameters": {"normalize": True}}]},
            "global parameter",
        ),
    ],
)
def test_config_errors_are_one_line(cfg, msg):
    with pytest.raises(SafeAdaptError, match=msg) as ei:
        load_config(cfg)
    assert "\n" not in ei.value.one_line()


def test_top_k_mask_matches_argsort_with_and_without_ties_at_the_cut(monkeypatch):
    from safeadapt.repair.merge.methods import generalized

    calls = {"argsort": 0}
    real = torch.argsort

    def counting(*a, **k):
        calls["argsort"] += 1
        return real(*a, **k)

    monkeypatch.setattr(torch, "argsort", counting)
    g = torch.Generator().manual_seed(0)
    distinct = torch.randn(5000, generator=g).abs()
    tied = torch.randint(0, 7, (5000,), generator=g).float()  # hundreds of equal values at every cut
    for a, want_argsort in ((distinct, 0), (tied, 1)):
        for k in (1, 37, 2500, 4999):
            calls["argsort"] = 0
            ref = torch.zeros(a.numel(), dtype=torch.bool)
            ref[real(a, descending=True)[:k]] = True
            got = generalized.top_k_mask(a, k)
            assert got.dtype == torch.bool and int(got.sum()) == k
            assert torch.equal(got, ref), (want_argsort, k)
            assert torch.equal(generalized.top_k_mask(a, k, try_kthvalue=False), ref)
            # kthvalue decides when nothing is tied across the cut; the argsort only otherwise
            assert calls["argsort"] == (want_argsort if k < 4999 or want_argsort else 0) + 1
    assert bool(generalized.top_k_mask(distinct, 6000).all())


def test_ties_and_dare_load_peft_merge_utils_without_peft_or_transformers():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from safeadapt.repair.merge.methods import METHODS, TensorJob\n"
        "for name in ('ties', 'dare_ties'):\n"
        "    m = METHODS.get(name)\n"
        "    tp = [{'weight': 1.0, 'density': 0.5}, {'weight': 0.5, 'density': 0.5}, {'weight': 1.0, 'density': 1.0}]\n"
        "    g = {**m.params}\n"
        "    out = m(TensorJob('t', [torch.tensor([1., -2, 3, 0]), torch.tensor([-1., 2, 1, 1]), torch.zeros(4)], 2, "
        "g, tp, 0))\n"
        "    assert out.shape == (4,)\n"
        "print(sorted(x for x in ('peft', 'transformers') if x in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
