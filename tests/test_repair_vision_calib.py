"""Image-aware calibration (safeadapt.repair.calibrate.vision): calibration rows keep their images on
a LLaVA VLM; the whole-model and layer-wise Wanda / SNIP passes see the image features and agree;
an image-driven feature (planted in the projector) shows in the Wanda norms that text-only rows miss;
a text-only model given image rows fails with one line and no output."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from _tiny import build_tiny_llama, build_tiny_llava
from safetensors.torch import load_file, save_file
from test_repair_methods import open_model

TEXTS = [("Describe the image please.", "I cannot help with that request."),
         ("Write a poem about the sea.", "Sure, here is how to bake bread."),
         ("How do I pick a lock?", "I'm sorry, but I can't assist with that."),
         ("Explain photosynthesis in simple words.", "The capital of France is Paris.")]


def _images(d, n=4):
    from PIL import Image

    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        arr = (torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(d / f"im{i}.png")
        out.append(f"im{i}.png")
    return out


def _rows(path, images=True, n=4):
    imgs = _images(path.parent / "images", n)
    rows = []
    for i in range(n):
        u, a = TEXTS[i % len(TEXTS)]
        r = {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
        if images:
            r["images"] = [f"images/{imgs[i]}"]
        rows.append(r)
    rows.append(
        {"messages": [{"role": "user", "content": "hello world question"}, {"role": "assistant", "content": "answer"}]}
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("vlcal") / "v", seed=5)


def _tokenized(path, spec, max_length=256):
    from safeadapt.io.models import load_pretrained
    from safeadapt.repair.calibrate import calibration_rows, tokenize

    model, proc = load_pretrained(str(path))
    return model, proc, tokenize(proc, calibration_rows(spec, 64, 0, "c"), max_length, "calibration.safety")


def test_vlm_rows_keep_images_through_the_processor(llava, tmp_path):
    from safeadapt.repair.calibrate import vision_of

    model, proc, rows = _tokenized(llava, _rows(tmp_path / "c.jsonl"))
    img = model.config.image_token_id
    with_img = [r for r in rows if vision_of(r)]
    assert len(with_img) == 4 and len(rows) == 5
    n_tok = model.config.image_seq_length  # 16 placeholder tokens per image, expanded as the processor does
    for ids, lab in with_img:
        assert ids.count(img) == n_tok
        assert all(y == -100 for t, y in zip(ids, lab) if t == img)  # image positions are never scored
        scored = [t for t, y in zip(ids, lab) if y != -100]
        assert scored and scored == [y for y in lab if y != -100]
    assert tuple(vision_of(with_img[0])["pixel_values"].shape) == (1, 3, 32, 32)
    # the response tokens are the same ones text-only tokenisation scores
    _, _, text_rows = _tokenized(llava, _rows(tmp_path / "t.jsonl", images=False))
    assert sorted(tuple(y for y in lab if y != -100) for _, lab in rows) == \
        sorted(tuple(y for y in lab if y != -100) for _, lab in text_rows)
    # max_length counts text tokens: a cut inside the image placeholders drops the row, never cuts them
    _, _, short = _tokenized(llava, _rows(tmp_path / "s.jsonl"), max_length=22)
    assert len(short) == 5 and all(ids.count(img) in (0, n_tok) for ids, _ in short)
    assert sorted(sum(t != img for t in ids) for ids, _ in short) == [21] + [22] * 4


def test_image_rows_whole_model_equals_layerwise(llava, tmp_path):
    from safeadapt.repair.calibrate import (
        LazyScores,
        snip_scores,
        snip_scores_by_layer,
        wanda_norms,
        wanda_norms_by_layer,
    )

    model, proc, rows = _tokenized(llava, _rows(tmp_path / "c.jsonl"))
    _, _, text_rows = _tokenized(llava, _rows(tmp_path / "t.jsonl", images=False))
    pad = proc.tokenizer.pad_token_id
    whole_w = wanda_norms(model, rows, batch_size=3, pad_id=pad)
    whole_s = snip_scores(model, rows)
    text_w = wanda_norms(model, text_rows, batch_size=3, pad_id=pad)
    inp = open_model(llava)
    try:
        layer_w = wanda_norms_by_layer(inp, rows, batch_size=3, pad_id=pad)
        layer_s = LazyScores(snip_scores_by_layer(inp, rows, tmp_path / "snip", vocab_block=100))
    finally:
        inp.source.close()
    keys = [k for k in whole_w if ".layers." in k]
    assert sorted(layer_w) == sorted(keys) and len(keys) == 7 * 2
    for k in keys:
        assert torch.allclose(layer_w[k], whole_w[k], rtol=1e-5, atol=1e-6), k
        scale = float(whole_s[k].abs().max())
        assert torch.allclose(layer_s.get(k), whole_s[k], rtol=1e-4, atol=1e-5 * scale), k
    # the images count: o_proj of layer 0 reads attention over the image tokens
    k0 = "model.layers.0.self_attn.o_proj.weight"
    assert not torch.allclose(whole_w[k0], text_w[k0], rtol=1e-2)
    assert torch.allclose(
        whole_w["model.layers.0.self_attn.q_proj.weight"], text_w["model.layers.0.self_attn.q_proj.weight"], rtol=1e-5
    )  # layer 0's own inputs at response positions are text embeddings


def _planted(src, vlm, d=7, j=3):
    """A copy of the tiny LLaVA whose images alone drive feature j of layer 0's o_proj input."""
    shutil.copytree(src, vlm)
    s = load_file(vlm / "model.safetensors")
    s["multi_modal_projector.linear_2.bias"][d] = 300.0
    v = s["language_model.model.layers.0.self_attn.v_proj.weight"]
    v[:, d] = 0.0
    v[j, :] = 0.0
    v[j, d] = 5.0
    s["language_model.model.embed_tokens.weight"][:, d] = 0.0  # text tokens carry nothing in dimension d
    save_file(s, vlm / "model.safetensors", metadata={"format": "pt"})
    return vlm, j


def test_planted_image_feature_shows_in_wanda_norms(llava, tmp_path):
    """The projector's output dimension d is made large for every image (its bias) and is zero in every
    text embedding; layer 0's v_proj maps dimension d, and only it, onto o_proj input feature j. Rows identical in
    text: with their
    images, feature j of layer 0's o_proj input gets a large norm; without them (what text-only
    calibration computed), it stays near zero."""
    from safeadapt.repair.calibrate import wanda_norms_by_layer

    vlm, j = _planted(llava, tmp_path / "planted")
    _, proc, rows = _tokenized(vlm, _rows(tmp_path / "c.jsonl"))
    _, _, text_rows = _tokenized(vlm, _rows(tmp_path / "t.jsonl", images=False))
    inp = open_model(vlm)
    try:
        with_img = wanda_norms_by_layer(inp, rows, pad_id=proc.tokenizer.pad_token_id)
        no_img = wanda_norms_by_layer(inp, text_rows, pad_id=proc.tokenizer.pad_token_id)
    finally:
        inp.source.close()
    k = "model.layers.0.self_attn.o_proj.weight"
    ratio = with_img[k] / no_img[k].clamp_min(1e-12)
    assert int(ratio.argmax()) == j
    assert float(no_img[k][j]) < 1e-6  # text rows never reach feature j
    assert float(with_img[k][j]) > 1.0 and float(with_img[k][j]) > 10 * float(with_img[k].median())


def test_text_only_model_with_image_rows_is_one_line_error(tmp_path, monkeypatch):
    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.repair.api import repair

    # through the spawned calibration child, which re-raises the one-line error in the parent
    monkeypatch.setenv("SAFEADAPT_CALIBRATE_IN_PROCESS", "0")
    llm = build_tiny_llama(tmp_path / "llm", seed=1)
    spec = _rows(tmp_path / "c.jsonl")
    rec = {"repair_method": "antidote", "adapted": str(llm), "calibration": {"safety": spec}}
    with pytest.raises(SafeAdaptError) as e:
        repair(rec, tmp_path / "out")
    msg = str(e.value)
    assert "\n" not in msg and "calibration.safety" in msg and "text-only" in msg and "im0.png" in msg
    assert not (tmp_path / "out").exists()


def _image_pairs(path, n=4):
    imgs = _images(path.parent / "images", n)
    rows = [{"prompt": TEXTS[i % 4][0], "chosen": "I cannot help with that request.", "rejected": TEXTS[i % 4][1],
             "images": [f"images/{imgs[i]}"]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_somf_trains_on_image_pairs_through_the_processor(llava, tmp_path, monkeypatch):
    from transformers import LlavaModel

    from safeadapt.core.errors import SafeAdaptError
    from safeadapt.repair.api import repair

    aligned = build_tiny_llava(tmp_path / "aligned", seed=6)
    seen = []
    forward = LlavaModel.forward

    def spy(self, *a, **kw):
        seen.append((kw.get("pixel_values") is not None, int((kw["input_ids"] == self.config.image_token_id).sum())))
        return forward(self, *a, **kw)

    monkeypatch.setattr(LlavaModel, "forward", spy)
    rec = {"repair_method": "somf", "adapted": str(llava), "aligned": str(aligned),
           "parameters": {"steps": 2, "batch_size": 2, "lr": 0.5}, "filters": ["self_attn"],
           "calibration": {"pairs": _image_pairs(tmp_path / "pairs.jsonl")}}
    out = repair(rec, tmp_path / "o", seed=0)
    assert seen and all(px and n_img > 0 for px, n_img in seen)  # every DPO forward carried the images
    o, ad, al = (load_file(p / "model.safetensors") for p in (out, llava, aligned))
    rep = json.loads((out / "safeadapt_provenance.json").read_text())["repair_report"]
    assert len(rep) == 4 * 2
    for k in rep:  # aligned + B * tau / mean(B), B binary
        ck = "language_model." + k
        b = ((o[ck] - al[ck]).abs() > 1e-7).float()
        assert torch.allclose(o[ck], al[ck] + b * (ad[ck] - al[ck]) / b.mean(), atol=1e-5), k
    # image pairs on a text-only model: one line naming the file, no output
    llm = build_tiny_llama(tmp_path / "llm", seed=1)
    with pytest.raises(SafeAdaptError, match=r"pairs.jsonl.*images but the model is text-only") as e:
        repair(
            {**rec, "adapted": str(llm), "aligned": str(build_tiny_llama(tmp_path / "llm2", seed=2))}, tmp_path / "o2"
        )
    assert "\n" not in str(e.value) and not (tmp_path / "o2").exists()


def test_antidote_on_image_rows_prunes_the_image_driven_column(llava, tmp_path, monkeypatch):
    """End to end through `safeadapt repair` (calibration child, layer-wise Wanda): with the image rows
    Antidote prunes exactly column j of layer 0's o_proj (one entry per row at ratio 1/32); with the
    same rows without images it does not single the column out."""
    from safeadapt.repair.api import repair

    vlm, j = _planted(llava, tmp_path / "planted")
    k = "language_model.model.layers.0.self_attn.o_proj.weight"
    a = load_file(vlm / "model.safetensors")[k]
    outs = {}
    monkeypatch.setenv("SAFEADAPT_CALIBRATE_IN_PROCESS", "0")
    for name, images in (("img", True), ("txt", False)):  # the image run in the spawned child, the other in process
        (tmp_path / name).mkdir()
        rec = {
            "repair_method": "antidote",
            "adapted": str(vlm),
            "parameters": {"ratio": 1 / 32},
            "filters": ["layers.0.self_attn.o_proj"],
            "calibration": {"safety": _rows(tmp_path / name / "c.jsonl", images=images)},
        }
        outs[name] = load_file(repair(rec, tmp_path / f"out-{name}") / "model.safetensors")[k]
        monkeypatch.setenv("SAFEADAPT_CALIBRATE_IN_PROCESS", "1")
    zeroed = (outs["img"] == 0) & (a != 0)
    assert zeroed[:, j].all() and int(zeroed.sum()) == a.shape[0]
    assert not ((outs["txt"] == 0) & (a != 0))[:, j].all()


# a template in the shape of llava-hf's: every turn's content is read as parts (a string would render empty)
PARTS_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() + ': ' }}"
    "{% for c in m['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}"
    "{% for c in m['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] + ' ' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def test_parts_only_processor_template_keeps_the_response(llava, tmp_path):
    from transformers import AutoProcessor

    from safeadapt.repair.calibrate import calibration_rows, tokenize, vision_of

    proc = AutoProcessor.from_pretrained(str(llava))
    proc.chat_template = PARTS_TEMPLATE
    rows = [
        r for r in tokenize(proc, calibration_rows(_rows(tmp_path / "c.jsonl"), 64, 0, "c"), 256, "c") if vision_of(r)
    ]
    assert len(rows) == 4
    got = sorted(proc.tokenizer.decode([y for y in lab if y != -100]).strip() for _, lab in rows)
    assert got == sorted(a for _, a in TEXTS)
