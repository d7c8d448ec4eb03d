"""Which (layer, module) a checkpoint tensor belongs to, from its canonical (LLM-style) name:
attention q/k/v/o, MLP gate/up/down, norms, embeddings and head for the language tower; the vision
tower and projector are reported apart ("vision", "projector") so they never mix with the LLM."""

from __future__ import annotations

import re

from safeadapt.io.names import canonical_part, layer_index

#: display order of module types (heatmap columns)
MODULE_ORDER = ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm", "norm", "embed", "head",
                "final_norm", "vision", "projector", "other")

_RULES: tuple[tuple[str, str], ...] = (
    (r"(q_proj|\.wq\.|query)", "q"), (r"(k_proj|\.wk\.|\.key\.)", "k"), (r"(v_proj|\.wv\.|\.value\.)", "v"),
    (r"(o_proj|out_proj|\.wo\.|dense\.)", "o"), (r"(gate_proj|w1\.)", "gate"), (r"(up_proj|w3\.|fc1)", "up"),
    (r"(down_proj|w2\.|fc2)", "down"), (r"(input_layernorm|attention_norm|ln_1)", "attn_norm"),
    (r"(post_attention_layernorm|ffn_norm|ln_2)", "mlp_norm"), (r"(norm|layernorm|ln_)", "norm"),
)


def module_of(key: str) -> tuple[int | None, str]:
    """(decoder layer index or None, module type) of a canonical tensor name."""
    part = canonical_part(key)
    if part in ("vision", "projector"):
        return None, part
    layer = layer_index(key)
    if layer is not None:
        for pat, name in _RULES:
            if re.search(pat, key):
                return layer, name
        return layer, "other"
    if "embed" in key or key.endswith("wte.weight"):
        return None, "embed"
    if key.startswith("lm_head.") or ".output." in key:
        return None, "head"
    if "norm" in key:
        return None, "final_norm"
    return None, "other"
