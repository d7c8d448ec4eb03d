"""LLaVA-style vision-language adaptation: `build_llava` assembles a transformers
`LlavaForConditionalGeneration` + `LlavaProcessor` from any HF causal LM and any vision tower
(CLIP / SigLIP / DINOv2, vision-only or full dual-encoder checkpoints, or a bare config) with a
LLaVA-1.5 two-layer MLP projector; `vl_adapt` runs the two-stage LLaVA recipe (stage 1: projector
only on captions; stage 2: projector + LLM on visual instructions, vision tower frozen)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safeadapt.core.errors import SafeAdaptError
from safeadapt.train.chat import IMAGE_TOKEN, normalise_chat_rows
from safeadapt.train.sft import SFTOptions, sft

# Mean / std the towers were pre-trained with (used only when the tower ships no preprocessor).
_NORM = {
    "clip": ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
    "siglip": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "dinov2": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}

# Converts structured content parts to plain strings ("<image>\n" per image part) and then runs the
# language model's own template, so text-only chats render exactly as they did for the LLM.
_PRELUDE = (
    "{%- set _ns = namespace(msgs=[]) -%}"
    "{%- for _m in messages -%}"
    "{%- if _m['content'] is string -%}{%- set _c = _m['content'] -%}"
    "{%- else -%}{%- set _p = namespace(s='') -%}"
    "{%- for _part in _m['content'] -%}"
    "{%- if _part['type'] == 'image' -%}{%- set _p.s = _p.s + '@@IMG@@\\n' -%}"
    "{%- elif _part['type'] == 'text' -%}{%- set _p.s = _p.s + _part['text'] -%}{%- endif -%}"
    "{%- endfor -%}{%- set _c = _p.s -%}{%- endif -%}"
    "{%- set _ns.msgs = _ns.msgs + [{'role': _m['role'], 'content': _c}] -%}"
    "{%- endfor -%}"
    "{%- set messages = _ns.msgs -%}"
)

# Used when the language model has no chat template (LLaVA-1.5's "USER: ... ASSISTANT: ..." form).
_FALLBACK_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ m['content'] }}\n"
    "{%- elif m['role'] == 'user' -%}USER: {{ m['content'] }}\n"
    "{%- else -%}ASSISTANT: {{ m['content'] }}{{ eos_token }}\n{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
)


def llava_chat_template(llm_template: str | None, image_token: str = IMAGE_TOKEN) -> str:
    """The LLaVA processor's chat template: image parts become `<image>\\n` in the user text, the
    rest is the language model's own template (or a LLaVA-1.5 style one when it has none)."""
    base = llm_template or _FALLBACK_TEMPLATE
    return _PRELUDE.replace("@@IMG@@", image_token) + base


# ----------------------------------------------------------------------------- vision tower


def _read_json(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SafeAdaptError(f"cannot read {p}: {e}") from None


def load_vision_tower(ref: str | Path, *, allow_pickle: bool = False) -> tuple[Any, str, bool]:
    """(tower module, family, weights_loaded) from a dir holding a CLIP / SigLIP / DINOv2 vision
    model, a full CLIP / SigLIP model (its vision part is taken), or only a config (random init)."""
    import torch
    from transformers import AutoConfig, AutoModel

    path = Path(ref)
    if not (path / "config.json").is_file():
        raise SafeAdaptError(f"vision tower {ref}: no config.json (expected a CLIP / SigLIP / DINOv2 dir)")
    raw = _read_json(path / "config.json")
    mtype = raw.get("model_type", "")
    cfg = AutoConfig.from_pretrained(str(path))
    if mtype in ("clip", "siglip", "siglip2", "chinese_clip", "metaclip_2"):
        cfg = cfg.vision_config
        mtype = cfg.model_type
    family = "siglip" if "siglip" in mtype else "dinov2" if "dinov2" in mtype else "clip" if "clip" in mtype else ""
    if not family:
        raise SafeAdaptError(
            f"vision tower {ref}: model_type {raw.get('model_type')!r} is not a CLIP, SigLIP or DINOv2 vision model"
        )
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    if not has_weights:
        torch.manual_seed(0)
        return AutoModel.from_config(cfg), family, False
    if not any(path.glob("*.safetensors")) and not allow_pickle:
        raise SafeAdaptError(f"vision tower {ref}: only pickle .bin weights; pass allow_pickle to load them")
    try:
        full = AutoModel.from_pretrained(str(path), dtype=torch.float32, use_safetensors=not allow_pickle or None)
    except (OSError, ValueError, KeyError) as e:
        raise SafeAdaptError(f"vision tower {ref}: cannot load weights: {' '.join(str(e).split())[:200]}") from None
    if full.config.model_type == cfg.model_type:
        return full, family, True
    # a dual encoder (CLIPModel / SiglipModel): keep its vision transformer inside a vision-only model
    tower = AutoModel.from_config(cfg)
    sub = getattr(full, "vision_model", None)
    if sub is None:
        raise SafeAdaptError(f"vision tower {ref}: cannot find the vision part of a {full.config.model_type} model")
    sub_state = sub.state_dict()
    want = tower.state_dict()
    if set(sub_state) != set(want):  # older layouts nest the transformer one level deeper
        sub_state = {k: v for k, v in full.state_dict().items() if k.startswith("vision_model.")}
        if set(sub_state) != set(want):
            sub_state = {k.removeprefix("vision_model."): v for k, v in sub_state.items()}
    try:
        tower.load_state_dict(sub_state, strict=True)
    except RuntimeError as e:
        raise SafeAdaptError(f"vision tower {ref}: vision weights do not fit {type(tower).__name__}: "
                             f"{' '.join(str(e).split())[:200]}") from None
    return tower, family, True


def _tower_geometry(tower: Any, family: str) -> dict[str, int | str]:
    cfg = tower.config
    image_size = cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0]
    patch = cfg.patch_size if isinstance(cfg.patch_size, int) else cfg.patch_size[0]
    has_cls = family in ("clip", "dinov2")
    registers = int(getattr(cfg, "num_register_tokens", 0) or 0)
    extra = (1 if has_cls else 0) + registers
    strategy = "default" if has_cls else "full"
    patches = (image_size // patch) ** 2
    return {
        "image_size": image_size,
        "patch_size": patch,
        "num_additional_image_tokens": extra,
        "vision_feature_select_strategy": strategy,
        # the processor inserts patches + extra - (1 if "default" drops CLS) image tokens
        "image_seq_length": patches + extra - (1 if strategy == "default" else 0),
    }


def _image_processor(ref: Path, family: str, image_size: int) -> Any:
    from transformers import AutoImageProcessor, CLIPImageProcessor

    if (ref / "preprocessor_config.json").is_file():
        return AutoImageProcessor.from_pretrained(str(ref))
    mean, std = _NORM[family]
    return CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=mean,
        image_std=std,
    )


# ----------------------------------------------------------------------------- build


def build_llava(
    llm: str | Path,
    vision_tower: str | Path,
    out_dir: str | Path,
    *,
    projector_hidden_act: str = "gelu",
    image_token: str = IMAGE_TOKEN,
    image_seq_length: int | None = None,
    vision_feature_layer: int = -2,
    seed: int = 0,
    overwrite: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """Assemble and save a LLaVA-style VLM (see module doc). The language tower's weights and
    chat format are kept; `<image>` is added to the tokenizer (embeddings resized) when missing;
    the projector (Linear-GELU-Linear) is freshly initialised with `seed`."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from safeadapt.core.atomic import atomic_dir, atomic_write_json, check_output_dir
    from safeadapt.core.provenance import provenance
    from safeadapt.core.runtime import set_seed
    from safeadapt.io.models import load_pretrained

    out = check_output_dir(out_dir, overwrite=overwrite)
    lm, tok = load_pretrained(str(llm), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if hasattr(tok, "tokenizer") or hasattr(lm.config, "vision_config"):
        raise SafeAdaptError(f"{llm}: expected a text-only causal LM, got a vision-language model")
    tower, family, tower_loaded = load_vision_tower(vision_tower, allow_pickle=allow_pickle)
    geo = _tower_geometry(tower, family)
    if image_seq_length is not None and image_seq_length != geo["image_seq_length"]:
        raise SafeAdaptError(
            f"image_seq_length={image_seq_length} does not match the tower's {geo['image_seq_length']} image tokens "
            f"({geo['image_size']}px / patch {geo['patch_size']}, strategy {geo['vision_feature_select_strategy']})"
        )
    n_layers = tower.config.num_hidden_layers
    if not -n_layers - 1 <= vision_feature_layer <= n_layers:
        raise SafeAdaptError(f"vision_feature_layer={vision_feature_layer} outside the tower's {n_layers} layers")

    added = False
    if image_token not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [image_token]})
        added = True
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if len(tok) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tok), mean_resizing=False)
    image_token_id = tok.convert_tokens_to_ids(image_token)

    text_cfg = lm.config
    cfg = LlavaConfig(
        text_config=text_cfg.to_dict(),
        vision_config=tower.config.to_dict(),
        image_token_index=image_token_id,
        image_seq_length=int(geo["image_seq_length"]),
        projector_hidden_act=projector_hidden_act,
        vision_feature_select_strategy=str(geo["vision_feature_select_strategy"]),
        vision_feature_layer=vision_feature_layer,
        tie_word_embeddings=bool(getattr(text_cfg, "tie_word_embeddings", False)),
    )
    set_seed(seed)
    model = LlavaForConditionalGeneration(cfg)
    base = getattr(lm, lm.base_model_prefix)
    model.model.language_model.load_state_dict(base.state_dict(), strict=True)
    model.lm_head.load_state_dict(lm.get_output_embeddings().state_dict(), strict=True)
    model.model.vision_tower.load_state_dict(tower.state_dict(), strict=True)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = lm.generation_config
    model.eval()

    improc = _image_processor(Path(vision_tower), family, int(geo["image_size"]))
    template = tok.chat_template if isinstance(tok.chat_template, str) else None
    processor = LlavaProcessor(
        image_processor=improc,
        tokenizer=tok,
        patch_size=int(geo["patch_size"]),
        vision_feature_select_strategy=str(geo["vision_feature_select_strategy"]),
        chat_template=llava_chat_template(template, image_token),
        image_token=image_token,
        num_additional_image_tokens=int(geo["num_additional_image_tokens"]),
    )
    tok.chat_template = processor.chat_template
    with torch.no_grad(), atomic_dir(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        atomic_write_json(
            tmp / "safeadapt_build.json",
            provenance(
                config={
                    "llm": str(llm), "vision_tower": str(vision_tower), "family": family,
                    "tower_weights_loaded": tower_loaded, "image_token_added": added,
                    "projector_hidden_act": projector_hidden_act, "seed": seed,
                    "vision_feature_layer": vision_feature_layer, **geo,
                },
            ),
        )
    return out


# ----------------------------------------------------------------------------- two-stage adaptation

CAPTION_PROMPT = "Describe the image briefly."


def caption_to_chat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Caption rows `{"images": [img], "caption": str}` (or `"image"`) become chat rows with a
    fixed instruction; rows already in `messages` form pass through."""
    out = []
    for i, r in enumerate(rows):
        if "messages" in r:
            out.append(r)
            continue
        if "caption" not in r or not ("images" in r or "image" in r):
            where = f"caption row {i}" if not r.get("_line") else f"caption line {r['_line']}"
            raise SafeAdaptError(f"{where}: needs 'messages', or 'caption' with 'images'/'image'")
        imgs = r.get("images") or [r["image"]]
        out.append(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}] * len(imgs) + [{"type": "text", "text": CAPTION_PROMPT}],
                    },
                    {"role": "assistant", "content": str(r["caption"])},
                ],
                "images": imgs,
                "_line": r.get("_line"),
            }
        )
    return out


def stage_defaults(stage: int) -> SFTOptions:
    """LLaVA-1.5 defaults: 1 epoch, warmup 3%, cosine; stage 1 lr 1e-3 (projector only), stage 2
    lr 2e-5 (projector + LLM, vision tower frozen)."""
    if stage == 1:
        return SFTOptions(lr=1e-3, epochs=1, warmup_ratio=0.03, scheduler="cosine",
                          train_modules=["multi_modal_projector"])
    return SFTOptions(lr=2e-5, epochs=1, warmup_ratio=0.03, scheduler="cosine", freeze_modules=["vision_tower"])


def _stage_opts(opts: SFTOptions | None, stage: int) -> SFTOptions:
    o = (opts or stage_defaults(stage)).model_copy(deep=True)
    if stage == 1:
        o.train_modules = ["multi_modal_projector"]
        o.freeze_modules = None
    else:
        o.freeze_modules = sorted(set(o.freeze_modules or []) | {"vision_tower"})
    return o


def _stage1_done(path: Path, model: str, opts: SFTOptions, n_rows: int) -> bool:
    meta = path / "safeadapt_train.json"
    if not meta.is_file():
        return False
    rec = _read_json(meta)
    cfg = dict(rec.get("config") or {})
    want = opts.model_dump()
    cfg.pop("overwrite", None)
    want.pop("overwrite", None)
    train = rec.get("train", {})
    return cfg == want and train.get("base_model") == str(model) and train.get("rows") == n_rows


def vl_adapt(
    model: str | Path,
    caption_rows: list[dict[str, Any]],
    instruct_rows: list[dict[str, Any]],
    out_dir: str | Path,
    stage1: SFTOptions | None = None,
    stage2: SFTOptions | None = None,
    *,
    base_dir: str | Path | None = None,
    caption_source: str = "captions",
    instruct_source: str = "instructions",
) -> Path:
    """Two-stage LLaVA adaptation of the VLM at `model` (e.g. from `build_llava`).

    Stage 1 (skipped when `caption_rows` is empty) trains only the projector on caption rows and
    is saved at `<out_dir>-stage1` (reused on rerun when its recorded options and inputs match,
    so a killed run resumes after stage 1); stage 2 trains projector + LLM on `instruct_rows`
    with the vision tower frozen and is saved at `out_dir`."""
    out = Path(out_dir)
    s1 = _stage_opts(stage1, 1)
    s2 = _stage_opts(stage2, 2)
    if s2.overwrite is False and out.exists():
        raise SafeAdaptError(f"output path exists: {out} (pass --overwrite to replace it)")
    current = str(model)
    if not instruct_rows:
        raise SafeAdaptError("vl_adapt: no visual instruction rows for stage 2")
    bd = Path(base_dir) if base_dir else None
    # validate (and load the images of) both stages' rows before training anything
    rows2 = normalise_chat_rows(instruct_rows, base_dir=bd, source=instruct_source)
    if caption_rows:
        rows1 = normalise_chat_rows(caption_to_chat(caption_rows), base_dir=bd, source=caption_source)
        s1_dir = out.with_name(out.name + "-stage1")
        if s1_dir.exists() and _stage1_done(s1_dir, current, s1, len(rows1)):
            pass
        else:
            s1.overwrite = True if s1_dir.exists() and (s1.overwrite or s2.overwrite) else s1.overwrite
            sft(current, rows1, s1_dir, s1, source=caption_source)
        current = str(s1_dir)
    return sft(current, rows2, out, s2, source=instruct_source)
