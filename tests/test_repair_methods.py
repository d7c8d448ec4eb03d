"""Repair methods on planted structure (tiny models): RESTA equals its formula bit for bit, Antidote
prunes the weights made important by a large input-feature norm, grafting changes exactly the
selected entries to the aligned values, SafeMERGE mixes exactly the matrices below the threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from safeadapt.io.tiny import build_tiny_llava, build_tiny_llm
from safeadapt.repair.api import repair


def sd(d: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def edit(d: Path, fn) -> Path:
    s = load_file(d / "model.safetensors")
    fn(s)
    save_file(s, d / "model.safetensors", metadata={"format": "pt"})
    return d


def open_model(path: Path):
    """A tiny checkpoint opened as the merge engine's InputModel (what the calibration passes read)."""
    from safeadapt.io.resolve import resolve_model_ref
    from safeadapt.repair.merge.inputs import open_input

    return open_input(str(path), resolve_model_ref(str(path)), False)


def calib(path: Path, n: int = 6, offset: int = 0) -> str:
    rows = [
        {
            "messages": [
                {"role": "user", "content": " ".join(f"w{(i * 3 + j + offset) % 50}" for j in range(5))},
                {"role": "assistant", "content": " ".join(f"w{(i * 7 + j + offset) % 50}" for j in range(6))},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def llms(tmp_path_factory):
    d = tmp_path_factory.mktemp("repair")
    return {k: build_tiny_llm(d / k, seed=s) for k, s in (("aligned", 0), ("adapted", 1), ("unaligned", 2))}


def test_resta_equals_formula_bit_exact(llms, tmp_path, monkeypatch):
    from safeadapt.repair.merge import engine

    out = repair({"repair_method": "resta", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"]),
                  "unaligned": str(llms["unaligned"]), "parameters": {"gamma": 0.3}}, tmp_path / "r")
    # the same through the chunked (row-block streaming) path
    monkeypatch.setattr(engine, "MIN_CHUNKED_ELEMS", 1)
    monkeypatch.setattr(engine, "CHUNK_ELEMS", 40)
    out2 = repair({"repair_method": "resta", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"]),
                   "unaligned": str(llms["unaligned"]), "parameters": {"gamma": 0.3}}, tmp_path / "r2")
    ad, al, un = sd(llms["adapted"]), sd(llms["aligned"]), sd(llms["unaligned"])
    for o in (sd(out), sd(out2)):
        assert set(o) == set(ad)
        for k in ad:
            assert torch.equal(o[k], ad[k] + 0.3 * (al[k] - un[k])), k
    card = (out / "README.md").read_text()
    assert "repair_method: resta" in card and "(adapted)" in card and "(unaligned)" in card
    prov = json.loads((out / "safeadapt_provenance.json").read_text())
    assert prov["kind"] == "repair" and set(prov["inputs"]) == {
        str(llms[k]) for k in ("adapted", "aligned", "unaligned")
    }


def test_resta_dare_seeded(llms, tmp_path):
    rec = {"repair_method": "resta", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"]),
           "unaligned": str(llms["unaligned"]), "parameters": {"gamma": 0.5, "density": 0.5, "rescale": False}}
    a, b, c = (sd(repair(rec, tmp_path / n, seed=s)) for n, s in (("a", 1), ("b", 1), ("c", 2)))
    ad, al, un = sd(llms["adapted"]), sd(llms["aligned"]), sd(llms["unaligned"])
    k = "model.layers.1.mlp.down_proj.weight"
    assert torch.equal(a[k], b[k]) and not torch.equal(a[k], c[k])
    kept = a[k] - 0.5 * (al[k] - un[k]) - al[k]  # the DARE-dropped adapted delta
    delta = ad[k] - al[k]
    on = kept.abs() > 1e-6
    assert 0.3 < on.float().mean() < 0.7
    assert torch.allclose(kept[on], delta[on], atol=1e-6)


def test_antidote_prunes_planted_important_inputs(llms, tmp_path):
    adapted = tmp_path / "adapted"
    import shutil

    shutil.copytree(llms["adapted"], adapted)
    j = 5  # feature 5 of layer 1's attention input gets a huge norm: its weights become the most important

    def plant(s):
        s["model.layers.1.input_layernorm.weight"][j] = 1000.0
    edit(adapted, plant)
    rec = {"repair_method": "antidote", "adapted": str(adapted), "parameters": {"ratio": 1 / 16},
           "calibration": {"safety": calib(tmp_path / "harm.jsonl")}}
    o, a = sd(repair(rec, tmp_path / "r")), sd(adapted)
    for proj in ("q_proj", "k_proj", "v_proj"):
        k = f"model.layers.1.self_attn.{proj}.weight"
        zeroed = (o[k] == 0) & (a[k] != 0)
        assert zeroed[:, j].all() and zeroed.sum() == a[k].shape[0], (proj, zeroed.sum())
    changed = [k for k in a if not torch.equal(o[k], a[k])]
    assert all(".layers." in k and k.endswith("proj.weight") for k in changed)
    for k in changed:  # exactly int(ratio * columns) per row everywhere
        assert ((o[k] == 0) & (a[k] != 0)).sum(1).eq(int(a[k].shape[1] / 16)).all(), k
    # the magnitude ablation ignores activations: column j is not singled out
    om = sd(repair({**rec, "parameters": {"ratio": 1 / 16, "mode": "magnitude"}}, tmp_path / "m"))
    k = "model.layers.1.self_attn.q_proj.weight"
    assert not ((om[k] == 0)[:, j]).all()
    w = a[k].abs()
    assert torch.equal(om[k] == 0, w == w.max(1, keepdim=True).values)


def test_graft_changes_exactly_selected_entries(llms, tmp_path):
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import calibration_rows, tokenize, wanda_norms
    from safeadapt.train.common import tokenizer_of

    safety, utility = calib(tmp_path / "s.jsonl"), calib(tmp_path / "u.jsonl", offset=20)
    rec = {"repair_method": "set_difference", "adapted": str(llms["adapted"]), "aligned": str(llms["aligned"]),
           "parameters": {"score": "wanda", "p": 0.2, "q": 0.2, "action": "graft"},
           "calibration": {"safety": safety, "utility": utility}, "filters": ["mlp"]}
    out = repair(rec, tmp_path / "g")
    o, ad, al = sd(out), sd(llms["adapted"]), sd(llms["aligned"])
    # independent expectation: Wanda scores of the aligned model, top-20% safety minus top-20% utility
    model, proc = load_pretrained(str(llms["aligned"]))
    tok = tokenizer_of(proc)
    norms = {
        n: wanda_norms(model, tokenize(tok, calibration_rows(f, 128, 0, n), 256, n))
        for n, f in (("s", safety), ("u", utility))
    }
    report = json.loads((out / "safeadapt_provenance.json").read_text())["repair_report"]
    n_sel = 0
    for k in ad:
        if ".mlp." not in k:
            assert torch.equal(o[k], ad[k]), k
            continue
        def top(score, frac=0.2):
            kk = int(score.numel() * frac)
            thr = score.reshape(-1).sort(descending=True).values[kk - 1]
            return score >= thr
        w = al[k].abs()
        expect = top(w * norms["s"][k]) & ~top(w * norms["u"][k])
        changed = o[k] != ad[k]
        assert torch.equal(changed, expect), k
        assert torch.equal(o[k][changed], al[k][changed])
        assert report[k]["selected"] == int(expect.sum())
        n_sel += int(expect.sum())
    assert n_sel > 0
    # prune: the same entries zeroed
    op = sd(repair({**rec, "parameters": {**rec["parameters"], "action": "prune"}}, tmp_path / "p"))
    k = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(op[k] == 0, o[k] != ad[k])


def test_snip_graft_runs_and_selects(llms, tmp_path):
    rec = {
        "repair_method": "set_difference",
        "adapted": str(llms["adapted"]),
        "aligned": str(llms["aligned"]),
        "parameters": {"score": "snip", "p": 0.1, "q": 0.1},
        "calibration": {
            "safety": calib(tmp_path / "s.jsonl"),
            "utility": calib(tmp_path / "u.jsonl", offset=20),
            "n": 4,
        },
    }
    out = repair(rec, tmp_path / "g")
    rep = json.loads((out / "safeadapt_provenance.json").read_text())["repair_report"]
    k = "model.layers.0.self_attn.q_proj.weight"
    assert 0 < rep[k]["selected"] <= int(0.1 * rep[k]["numel"])
    o, ad, al = sd(out), sd(llms["adapted"]), sd(llms["aligned"])
    changed = o[k] != ad[k]
    assert int(changed.sum()) == rep[k]["selected"] and torch.equal(o[k][changed], al[k][changed])


def test_safemerge_mixes_exactly_layers_below_threshold(llms, tmp_path):
    import shutil

    al = sd(llms["aligned"])
    g = torch.Generator().manual_seed(0)
    un, ad = {}, {}
    orth = {"model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight"}
    for k, w in al.items():
        if ".layers." not in k or w.dim() != 2:
            un[k], ad[k] = w.clone(), w.clone()
            continue
        u = torch.randn(w.shape[0], 1, generator=g)
        v = torch.randn(1, w.shape[1], generator=g)
        un[k] = w - u @ v  # V = aligned - unaligned = u v^T (rank 1)
        r = torch.randn(w.shape, generator=g)
        if k in orth:  # a delta orthogonal to the safety subspace: cosine 0 -> mixed
            uu = u / u.norm()
            ad[k] = w + 0.01 * (r - uu @ (uu.T @ r))
        else:  # a delta inside it: cosine 1 -> kept
            ad[k] = w + 0.01 * u @ torch.randn(1, w.shape[1], generator=g)
    for name, s in (("un", un), ("ad", ad)):
        shutil.copytree(llms["aligned"], tmp_path / name)
        save_file(s, tmp_path / name / "model.safetensors", metadata={"format": "pt"})
    out = repair({"repair_method": "safemerge", "adapted": str(tmp_path / "ad"), "aligned": str(llms["aligned"]),
                  "unaligned": str(tmp_path / "un")}, tmp_path / "o")
    rep = json.loads((out / "safeadapt_provenance.json").read_text())["repair_report"]
    assert {k for k, v in rep.items() if v["mixed"]} == orth
    assert all(v["cosine"] > 0.99 for k, v in rep.items() if k not in orth)
    o = sd(out)
    for k in ad:
        if k in orth:
            assert torch.allclose(o[k], 0.8 * ad[k] + 0.2 * al[k], atol=1e-7), k
        else:
            assert torch.equal(o[k], ad[k]), k
    assert "2 of" in (out / "README.md").read_text()


def test_projection_cosine_matches_explicit_projection():
    from safeadapt.repair.methods.safemerge import projection_cosine

    g = torch.Generator().manual_seed(1)
    for shape in ((6, 9), (9, 6)):
        v, dw = (
            torch.randn(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64),
        )
        c = v @ v.T / torch.linalg.norm(v)
        cd = c @ dw
        expect = float((cd * dw).sum() / (cd.norm() * dw.norm()))
        assert abs(projection_cosine(dw, v) - expect) < 1e-12


def test_vlm_repaired_with_text_llm_references(llms, tmp_path):
    vlm = build_tiny_llava(tmp_path / "vlm", seed=3)
    out = repair({"repair_method": "resta", "adapted": str(vlm), "aligned": str(llms["aligned"]),
                  "unaligned": str(llms["unaligned"]), "parameters": {"gamma": 0.5}}, tmp_path / "r")
    o, v, al, un = sd(out), sd(vlm), sd(llms["aligned"]), sd(llms["unaligned"])
    from safeadapt.io.names import detect_layout, to_canonical

    lay = detect_layout(v)
    assert set(o) == set(v)
    n_lang = 0
    for k, w in v.items():
        c = to_canonical(k, lay)
        if c in al:
            assert torch.equal(o[k], w + 0.5 * (al[c] - un[c])), k
            n_lang += 1
        else:
            assert torch.equal(o[k], w), k
    assert n_lang == len(al)
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava"
    # calibration hooks on the VLM's language tower map to the same canonical names
    ant = repair(
        {"repair_method": "antidote", "adapted": str(vlm), "calibration": {"safety": calib(tmp_path / "h.jsonl")}},
        tmp_path / "a",
    )
    rep = json.loads((ant / "safeadapt_provenance.json").read_text())["repair_report"]
    assert "model.layers.0.self_attn.q_proj.weight" in rep and not any("vision" in k for k in rep)


def test_scores_match_naive_definitions(llms, tmp_path):
    """SNIP = |W| * sum_s |dL_s/dW| (per-sample, response tokens); Wanda = sqrt(sum of x_j^2 over the
    positions that predict a response token)."""
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import calibration_rows, snip_scores, tokenize, wanda_norms
    from safeadapt.train.common import tokenizer_of

    model, proc = load_pretrained(str(llms["aligned"]))
    rows = tokenize(tokenizer_of(proc), calibration_rows(calib(tmp_path / "c.jsonl", n=3), 128, 0, "c"), 256, "c")
    k = "model.layers.1.mlp.down_proj.weight"
    w = model.model.layers[1].mlp.down_proj.weight
    naive = torch.zeros_like(w)
    xs = []
    hook = model.model.layers[1].mlp.down_proj.register_forward_pre_hook(lambda _m, a: xs.append(a[0].detach()))
    for ids, lab in rows:
        x = torch.tensor([ids])
        loss = model(input_ids=x, labels=torch.tensor([lab])).loss
        (g,) = torch.autograd.grad(loss, w)
        naive += g.abs()
    hook.remove()
    got = snip_scores(model, rows)[k]
    assert torch.allclose(got, naive * w.detach().abs(), rtol=1e-5, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())
    # the positions predicting a response token: each one's predecessor (the last prompt position included)
    pred = [torch.tensor(lab[1:] + [-100]) != -100 for _, lab in rows]
    assert all(p.any() and not p[-1] for p in pred)
    sq = sum((x[0][p] ** 2).sum(0).double() for x, p in zip(xs, pred))
    norms = wanda_norms(model, rows, batch_size=2)[k]
    assert torch.allclose(norms.double(), sq.sqrt(), rtol=1e-5)


@pytest.mark.parametrize("kind", ["llm", "llava"])
def test_wanda_by_layer_equals_whole_model(llms, tmp_path, kind):
    """The layer-by-layer pass (one decoder layer in memory) gives the whole-model pass's norms."""
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import calibration_rows, tokenize, wanda_norms, wanda_norms_by_layer
    from safeadapt.train.common import tokenizer_of

    path = llms["aligned"] if kind == "llm" else build_tiny_llava(tmp_path / "v", seed=4)
    model, proc = load_pretrained(str(path))
    tok = tokenizer_of(proc)
    rows = tokenize(tok, calibration_rows(calib(tmp_path / "c.jsonl", n=5), 128, 0, "c"), 256, "c")
    whole = wanda_norms(model, rows, batch_size=2, pad_id=tok.pad_token_id)
    inp = open_model(path)
    by_layer = wanda_norms_by_layer(inp, rows, batch_size=2, pad_id=tok.pad_token_id)
    inp.source.close()
    layer_keys = {k for k in whole if ".layers." in k}
    assert set(by_layer) == layer_keys and len(layer_keys) == 7 * 3
    for k in layer_keys:
        assert torch.allclose(by_layer[k], whole[k], rtol=1e-4, atol=1e-6), k


def test_antidote_reference_prunes_the_changed_entries_and_random_is_seeded(llms, tmp_path):
    import shutil

    adapted = tmp_path / "adapted"
    shutil.copytree(llms["aligned"], adapted)
    k = "model.layers.0.self_attn.v_proj.weight"
    cols = torch.arange(16) % 16  # row i: one changed entry, in column i

    def plant(s):
        s[k][torch.arange(16), cols] += 0.5
    edit(adapted, plant)
    rec = {"repair_method": "antidote", "adapted": str(adapted), "aligned": str(llms["aligned"]),
           "parameters": {"ratio": 1 / 16, "mode": "reference"}, "calibration": {"safety": calib(tmp_path / "h.jsonl")},
           "filters": ["v_proj"]}
    o, a = sd(repair(rec, tmp_path / "r")), sd(adapted)
    zeroed = (o[k] == 0) & (a[k] != 0)
    assert torch.equal(zeroed, torch.zeros_like(zeroed).index_put_((torch.arange(16), cols), torch.tensor(True)))
    assert all(torch.equal(o[x], a[x]) for x in a if "v_proj" not in x)
    rnd = {**rec, "parameters": {"ratio": 0.25, "mode": "random"}}
    r1, r2, r3 = (sd(repair(rnd, tmp_path / n, seed=s)) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    assert torch.equal(r1[k], r2[k]) and not torch.equal(r1[k], r3[k])
    assert ((r1[k] == 0) & (a[k] != 0)).sum(1).eq(4).all()


def test_row_block_streaming_matches_whole_tensors(llms, tmp_path, monkeypatch):
    """Row-wise repairs (antidote) and untouched tensors stream in row blocks with identical results;
    per-matrix methods (set_difference) still see whole tensors."""
    from safeadapt.repair.merge import engine

    cal = calib(tmp_path / "c.jsonl")
    recs = {
        "antidote": {"repair_method": "antidote", "adapted": str(llms["adapted"]), "calibration": {"safety": cal}},
        "graft": {
            "repair_method": "set_difference",
            "adapted": str(llms["adapted"]),
            "aligned": str(llms["aligned"]),
            "parameters": {"score": "wanda", "p": 0.2, "q": 0.3},
            "calibration": {"safety": cal, "utility": cal},
        },
    }
    whole = {n: repair(r, tmp_path / f"w-{n}") for n, r in recs.items()}
    monkeypatch.setattr(engine, "MIN_CHUNKED_ELEMS", 1)
    monkeypatch.setattr(engine, "CHUNK_ELEMS", 40)
    for n, r in recs.items():
        blocks = repair(r, tmp_path / f"b-{n}")
        a, b = sd(whole[n]), sd(blocks)
        assert all(torch.equal(a[k], b[k]) for k in a), n
        ra, rb = (
            json.loads((d / "safeadapt_provenance.json").read_text())["repair_report"] for d in (whole[n], blocks)
        )
        assert ra == rb, n


def test_calibration_in_child_process_equals_in_process(llms, tmp_path):
    """The spawned calibration child writes the same scores, bit for bit, as the pass run in process
    (layer-wise Wanda on the adapted model; layer-wise Wanda and SNIP on the aligned one: SNIP's
    scores are a directory of per-layer files)."""
    from safetensors.torch import load_file

    from safeadapt.io.resolve import resolve_model_ref
    from safeadapt.repair.calibrate import CalibrationJob, calibration_rows, compute_scores, compute_scores_in_child
    from safeadapt.repair.methods.base import ScoreNeed

    cal = calib(tmp_path / "c.jsonl", n=4)
    texts = {"safety": calibration_rows(cal, 4, 0, "safety"), "utility": calibration_rows(cal, 3, 1, "utility")}
    needs = [ScoreNeed("norms", "wanda", "safety", "adapted"), ScoreNeed("snip_s", "snip", "safety", "aligned"),
             ScoreNeed("wanda_u", "wanda", "utility", "aligned")]
    inputs = {r: (str(llms[r]), resolve_model_ref(str(llms[r]))) for r in ("adapted", "aligned")}
    got = {}
    for where, run in (("here", compute_scores), ("child", compute_scores_in_child)):
        (tmp_path / where).mkdir()
        job = CalibrationJob(
            needs=needs,
            inputs=inputs,
            texts=texts,
            max_length=64,
            batch_size=2,
            out_dir=str(tmp_path / where),
            seed=0,
            threads=torch.get_num_threads(),
        )
        paths = run(job)
        got[where] = {n: sd(Path(p)) if Path(p).is_dir() else load_file(p) for n, p in paths.items()}
    assert set(got["here"]) == {"norms", "snip_s", "wanda_u"} == set(got["child"])
    for n, scores in got["here"].items():
        assert scores and set(scores) == set(got["child"][n]), n
        assert all(torch.equal(v, got["child"][n][k]) for k, v in scores.items()), n
    assert got["here"]["snip_s"]["model.layers.0.mlp.up_proj.weight"].abs().sum() > 0
    assert Path(paths["snip_s"]).is_dir() and "lm_head.weight" not in got["here"]["snip_s"]


def test_small_models_are_calibrated_in_process_large_ones_in_a_child(llms, tmp_path, monkeypatch):
    """Unset, SAFEADAPT_CALIBRATE_IN_PROCESS picks by the scored checkpoints' size (a child costs a
    fresh interpreter): the tiny model is scored here; with the threshold below its size, or with
    the variable at 0, in the spawned child; both give the same bytes."""
    import safeadapt.repair.api as api
    import safeadapt.repair.calibrate as cc
    from safeadapt.repair.api import repair

    spawned = []
    real = cc.compute_scores_in_child
    monkeypatch.setattr(cc, "compute_scores_in_child", lambda job: spawned.append(1) or real(job))
    monkeypatch.delenv("SAFEADAPT_CALIBRATE_IN_PROCESS", raising=False)
    rec = {"repair_method": "antidote", "adapted": str(llms["adapted"]), "parameters": {"ratio": 0.1},
           "calibration": {"safety": calib(tmp_path / "c.jsonl", n=4)}}
    here = sd(repair(rec, tmp_path / "here"))
    assert spawned == []
    monkeypatch.setattr(api, "IN_PROCESS_MAX_BYTES", 1024)
    child = sd(repair(rec, tmp_path / "child"))
    assert spawned == [1]
    monkeypatch.setattr(api, "IN_PROCESS_MAX_BYTES", 1 << 40)
    monkeypatch.setenv("SAFEADAPT_CALIBRATE_IN_PROCESS", "0")
    repair(rec, tmp_path / "forced")
    assert spawned == [1, 1]
    assert set(here) == set(child) and all(torch.equal(here[k], child[k]) for k in here)
    assert sum(int((here[k] == 0).sum()) for k in here) > sum(int((sd(llms["adapted"])[k] == 0).sum()) for k in here)


def test_antidote_delta_prunes_the_fine_tune_not_the_aligned_weights(llms, tmp_path):
    """`prune: delta` (the reference's LoRA mode on full weights): the planted large fine-tune entries
    go back to the aligned values, every other entry keeps the fine-tune, and no weight is zeroed."""
    import shutil

    adapted = tmp_path / "adapted"
    shutil.copytree(llms["aligned"], adapted)
    k = "model.layers.0.mlp.down_proj.weight"

    def plant(s):
        s[k] += 0.01 * torch.randn(s[k].shape, generator=torch.Generator().manual_seed(0))  # a small everywhere-delta
        s[k][torch.arange(16), torch.arange(16) * 2] += 0.5  # row i: one large fine-tune entry, in column 2i
    edit(adapted, plant)
    rec = {"repair_method": "antidote", "adapted": str(adapted), "aligned": str(llms["aligned"]),
           "parameters": {"ratio": 1 / 32, "prune": "delta"}, "calibration": {"safety": calib(tmp_path / "h.jsonl")},
           "filters": ["down_proj"]}
    o, a, al = sd(repair(rec, tmp_path / "r")), sd(adapted), sd(llms["aligned"])
    back = o[k] == al[k]
    planted = torch.zeros_like(back).index_put_((torch.arange(16), torch.arange(16) * 2), torch.tensor(True))
    assert o[k].shape[1] // 32 == 1 and torch.equal(back, planted)
    assert torch.equal(o[k][~planted], a[k][~planted]) and not (o[k] == 0).any()
    assert all(torch.equal(o[x], a[x]) for x in a if "down_proj" not in x or "layers.0." not in x)
