"""Converters from public training-data formats to the rows `train sft` / `train dpo` read:
LLaVA conversations (LLaVA-Pretrain / LLaVA-Instruct), VLGuard, PKU Safe-RLHF and SPA-VL
preference data. Pure functions over one record; images are returned as references (a path under
`image_dir`, or in-memory bytes/PIL) for the caller to resolve or write."""

from __future__ import annotations

from typing import Any, Callable

from safeadapt.core.registry import Registry

IMAGE = "<image>"
ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}

#: name -> (kind "sft" | "dpo", converter(record) -> list of rows)
TRAIN_FORMATS: Registry[tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]] = Registry("training data format")


class FormatError(ValueError):
    """A record that does not have the format's fields (the caller adds file:row)."""


def _images(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list) else [value]


def _lead_images(text: str, n: int) -> str:
    """LLaVA puts `<image>` before or after the question; the trainers want it leading."""
    k = text.count(IMAGE)
    if not k:
        return text
    body = text.replace(IMAGE, "").strip()
    return (IMAGE + "\n") * k + body


def _need(rec: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise FormatError(f"missing field(s) {', '.join(repr(k) for k in missing)}")


@TRAIN_FORMATS.register("llava")
def _llava() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "conversations")
        images = _images(rec.get("image"))
        msgs = []
        for turn in rec["conversations"]:
            role = ROLE.get(str(turn.get("from", "")).lower())
            if role is None or not isinstance(turn.get("value"), str):
                raise FormatError(f"conversation turn needs from in {sorted(ROLE)} and a string value")
            msgs.append(
                {"role": role, "content": _lead_images(turn["value"], len(images)) if role == "user" else turn["value"]}
            )
        if images and not any(IMAGE in m["content"] for m in msgs):
            first = next((m for m in msgs if m["role"] == "user"), None)
            if first is not None:
                first["content"] = (IMAGE + "\n") * len(images) + first["content"]
        return [{"messages": msgs, "images": images}]

    return "sft", conv


@TRAIN_FORMATS.register("vlguard")
def _vlguard() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "image", "instr-resp")
        rows = []
        for ir in rec["instr-resp"]:
            q = ir.get("instruction") or ir.get("safe_instruction") or ir.get("unsafe_instruction")
            if not isinstance(q, str) or not isinstance(ir.get("response"), str):
                raise FormatError("each instr-resp item needs an instruction and a response")
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": IMAGE + "\n" + q},
                        {"role": "assistant", "content": ir["response"]},
                    ],
                    "images": _images(rec["image"]),
                }
            )
        return rows

    return "sft", conv


@TRAIN_FORMATS.register("safe-rlhf")
def _safe_rlhf() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "prompt", "response_0", "response_1", "safer_response_id")
        s = int(rec["safer_response_id"])
        if s not in (0, 1):
            raise FormatError(f"safer_response_id must be 0 or 1, got {s}")
        return [{"prompt": rec["prompt"], "chosen": rec[f"response_{s}"], "rejected": rec[f"response_{1 - s}"]}]

    return "dpo", conv


@TRAIN_FORMATS.register("spa-vl")
def _spa_vl() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "question", "chosen", "rejected")
        return [{"prompt": rec["question"], "chosen": rec["chosen"], "rejected": rec["rejected"],
                 "images": _images(rec.get("image"))}]

    return "dpo", conv


@TRAIN_FORMATS.register("messages")
def _messages() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "messages")
        return [{"messages": rec["messages"], "images": _images(rec.get("images"))}]

    return "sft", conv


@TRAIN_FORMATS.register("pairs")
def _pairs() -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    def conv(rec: dict[str, Any]) -> list[dict[str, Any]]:
        _need(rec, "prompt", "chosen", "rejected")
        return [{k: rec[k] for k in ("prompt", "chosen", "rejected", "images") if k in rec}]

    return "dpo", conv


def get_format(name: str) -> tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]:
    """(kind, converter) for a registered format; unknown names -> one-line error listing them."""
    return TRAIN_FORMATS.get(name)()
