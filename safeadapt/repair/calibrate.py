"""The shared calibration pass of the repair methods: calibration datasets (eval dataset SPECs,
safeadapt.data.loaders) tokenised with loss on response tokens only, then one scoring pass over a
model — Wanda input-feature norms ||X_j||_2 from forward pre-hooks on every Linear of the language
model (no second pass), or SNIP |W| * sum_s |dL_s/dW| from per-sample gradients. Scores are keyed by
canonical tensor names (safeadapt.io.names), so a LLaVA VLM and its text LLM share them."""

from __future__ import annotations

import random
from typing import Any, Iterator

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.runtime import track
from safeadapt.io.names import canonical_part, detect_layout, to_canonical


def calibration_rows(spec: Any, n: int, seed: int, what: str) -> list[list[dict[str, Any]]]:
    """Up to `n` chats from dataset SPEC (seeded sample). A sample without an assistant turn gets its
    `reference` as the response when it has one; else the whole chat is scored (documented). A
    sample's images become image parts (`{"type": "image", "path": ...}`) of its first user turn."""
    from safeadapt.repair.calibrate_vision import with_image_paths

    from safeadapt.data.loaders import load_samples

    samples = list(load_samples(spec))
    if not samples:
        raise SafeAdaptError(f"calibration set {what} ({spec}) is empty")
    if n and len(samples) > n:
        idx = sorted(random.Random(seed).sample(range(len(samples)), n))
        samples = [samples[i] for i in idx]
    rows = []
    for s in samples:
        msgs = s.chat()
        if msgs[-1]["role"] != "assistant" and s.reference and not s.choices:
            msgs = msgs + [{"role": "assistant", "content": s.reference}]
        try:
            rows.append(with_image_paths(msgs, [str(p) for p in s.images]))
        except SafeAdaptError as e:
            raise SafeAdaptError(f"{what} ({spec}) sample {s.id}: {e}") from None
    return rows


def tokenize(proc: Any, rows: list[list[dict[str, Any]]], max_length: int, what: str,
             model: str | None = None) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per row: labels on assistant tokens (-100 elsewhere); a row with no
    assistant turn is scored over all its tokens. `proc`: the model's tokenizer or processor. Rows
    with images on a VLM go through the processor (`calibrate_vision.Row`s carrying pixel_values);
    rows with images on a text-only model are an error."""
    from safeadapt.repair.calibrate_vision import image_paths, supports_images, tokenize_vision
    from safeadapt.train.common import tokenize_chat_rows, tokenizer_of

    if any(image_paths(r) for r in rows):
        if not supports_images(proc):
            first = next(p for r in rows for p in image_paths(r))
            raise SafeAdaptError(f"{what}: rows carry images (e.g. {first}) but the scored model {model or ''} is text-only "
                                 "(no image processor); give text rows or score a VLM (set_difference: score_model: adapted)")
        vrows: list[tuple[list[int], list[int]]] = list(tokenize_vision(proc, rows, max_length, what))
        if not vrows:
            raise SafeAdaptError(f"{what}: no row left with tokens to score")
        return vrows
    tokenizer = tokenizer_of(proc)

    with_resp = [r for r in rows if any(m["role"] == "assistant" for m in r)]
    out: list[tuple[list[int], list[int]]] = []
    if with_resp:
        cols, _ = tokenize_chat_rows(tokenizer, with_resp, max_length)
        out += list(zip(cols["input_ids"], cols["labels"]))
    for r in rows:
        if not any(m["role"] == "assistant" for m in r):
            ids = tokenizer(tokenizer.apply_chat_template(r, tokenize=False), add_special_tokens=False)["input_ids"][:max_length]
            if ids:
                out.append((list(ids), list(ids)))
    if not out:
        raise SafeAdaptError(f"calibration set {what}: no row left with tokens to score")
    return out


def batches(rows: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int) -> Iterator[dict[str, Any]]:
    """Right-padded batches: input_ids, attention_mask, labels, `scored` (the positions predicting a
    response token: each response token's predecessor, so the last prompt position and not the last
    response token) and
    `vision` (the rows' image tensors concatenated, for the model's forward; empty for text rows)."""
    import torch

    from safeadapt.repair.calibrate_vision import vision_of

    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        T = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        lab = torch.full((len(chunk), T), -100, dtype=torch.long)
        att = torch.zeros((len(chunk), T), dtype=torch.long)
        for j, (x, y) in enumerate(chunk):
            ids[j, : len(x)] = torch.tensor(x)
            lab[j, : len(y)] = torch.tensor(y)
            att[j, : len(x)] = 1
        vis = [vision_of(r) for r in chunk if vision_of(r)]  # LLaVA fills image tokens in batch order
        if vis and any(v[k].shape[1:] != vis[0][k].shape[1:] for v in vis for k in vis[0]):
            raise SafeAdaptError(f"calibration rows {i}-{i + len(chunk) - 1}: their image tensors differ in shape "
                                 "(per-image resolution); set calibration.batch_size: 1")
        vision = {k: torch.cat([v[k] for v in vis]) for k in vis[0]} if vis else {}
        # the positions whose outputs predict a response token (labels shift by one in a causal LM):
        # the last prompt position, where the model decides to answer or refuse, is one of them
        scored = torch.zeros_like(lab, dtype=torch.bool)
        scored[:, :-1] = lab[:, 1:] != -100
        yield {"input_ids": ids, "attention_mask": att, "labels": lab, "scored": scored, "vision": vision}


def language_linears(model: Any) -> dict[str, Any]:
    """Canonical weight key -> nn.Linear for every Linear of the language model (VLM towers skipped)."""
    import torch

    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            key = name + ".weight"
            canon = to_canonical(key, detect_layout([key]))
            if canonical_part(canon) == "language":
                out[canon] = mod
    return out


def norm_hooks(linears: dict[str, Any], sums: dict[str, Any], state: dict[str, Any]) -> list[Any]:
    """Forward pre-hooks adding sum over response positions (state["mask"]) of x_j^2 to sums[key]."""

    def hook(key: str):
        def fn(_mod: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            last_x, last_sq = state["last"]
            if last_x is x:  # q/k/v (and gate/up) read the same input: sum once
                sums[key] += last_sq
                return
            sel = x[state["mask"]] if x.dim() == 3 and x.shape[:2] == state["mask"].shape else x.reshape(-1, x.shape[-1])
            sq = sel.float().pow(2).sum(0).double()  # fp32 within a batch, fp64 across batches
            state["last"] = (x, sq)
            sums[key] += sq
        return fn

    return [m.register_forward_pre_hook(hook(k)) for k, m in linears.items()]


def wanda_norms(model: Any, rows: list[tuple[list[int], list[int]]], *, batch_size: int = 8, pad_id: int = 0,
                label: str = "wanda") -> dict[str, Any]:
    """||X_j||_2 of every Linear input feature over the response tokens, one hooked forward pass."""
    import torch

    linears = language_linears(model)
    sums = {k: torch.zeros(m.in_features, dtype=torch.float64) for k, m in linears.items()}
    state: dict[str, Any] = {"mask": None, "last": (None, None)}
    handles = norm_hooks(linears, sums, state)
    try:
        with torch.inference_mode():
            for b in track(list(batches(rows, batch_size, pad_id)), f"calibration ({label})"):
                state["mask"], state["last"] = b["scored"], (None, None)
                model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **b["vision"])
    finally:
        for h in handles:
            h.remove()
        state["last"] = (None, None)
    return {k: v.sqrt().float() for k, v in sums.items()}


def snip_scores(model: Any, rows: list[tuple[list[int], list[int]]], *, label: str = "snip") -> dict[str, Any]:
    """|W| * sum over samples of |dL_s/dW| for every language Linear weight (L_s: the mean response-token
    loss of sample s; one forward+backward per sample). A gradient hook turns each sample's gradient
    into its absolute value in place before autograd accumulates it into `.grad`, so the sum of |g_s|
    costs one elementwise pass per sample and no extra buffer. A row with no scored next-token target
    (a response truncated away) is skipped, as the layer-wise pass does."""
    import torch

    from safeadapt.repair.calibrate_vision import vision_of

    linears = language_linears(model)
    targets = {id(m.weight) for m in linears.values()}
    prev = {n: (p.requires_grad, p.grad) for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in targets)
        p.grad = None
    handles = [m.weight.register_hook(lambda g: g.abs_()) for m in linears.values()]
    try:
        for row in track(rows, f"calibration ({label})"):
            ids, lab = row
            if all(t == -100 for t in lab[1:]):  # no next-token target scored: the mean loss would be NaN
                continue
            x = torch.tensor([ids])
            loss = model(input_ids=x, attention_mask=torch.ones_like(x), labels=torch.tensor([lab]), **vision_of(row)).loss
            loss.backward()
        out = {}
        for k, m in linears.items():
            g = m.weight.grad
            out[k] = torch.zeros_like(m.weight, dtype=torch.float32) if g is None else g.float().mul_(m.weight.detach().abs())
            m.weight.grad = None
    finally:
        for h in handles:
            h.remove()
        for n, p in model.named_parameters():
            p.requires_grad_(prev[n][0])
            p.grad = prev[n][1]
    return out
