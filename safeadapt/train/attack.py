"""Harmful fine-tuning recipes after Qi et al. 2023 ("Fine-tuning aligned language models
compromises safety"): explicit harmful examples (N-shot), identity shifting (AOA), and benign
instruction tuning on Alpaca / Dolly. Each recipe turns raw records into chat rows (no I/O) and
carries the paper's defaults; `attack` loads the data, applies the recipe and runs `sft`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from safeadapt.core.errors import SafeAdaptError
from safeadapt.core.registry import Registry
from safeadapt.train.sft import SFTOptions, sft


@dataclass(frozen=True)
class Recipe:
    """`convert(records) -> chat rows`, and the paper's SFT defaults for this attack."""

    convert: Callable[[list[Any]], list[dict[str, Any]]]
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


ATTACKS: Registry[Callable[[], Recipe]] = Registry("attack recipe")


def _where(i: int) -> str:
    return f"record {i + 1}"


def _str(rec: dict[str, Any], keys: tuple[str, ...], i: int, *, required: bool = True) -> str:
    for k in keys:
        if k in rec and rec[k] is not None:
            if not isinstance(rec[k], str):
                raise SafeAdaptError(f"{_where(i)}: field {k!r} must be a string")
            return rec[k]
    if required:
        raise SafeAdaptError(f"{_where(i)}: missing field, expected one of {', '.join(keys)}")
    return ""


def _chat_or_pair(records: list[Any]) -> list[dict[str, Any]]:
    """Chat rows (`messages` dict or a bare list of messages) pass through; prompt/response pairs
    (`prompt|instruction|goal` + `response|output|completion|target`) become one exchange."""
    rows = []
    for i, rec in enumerate(records):
        if isinstance(rec, list):
            rows.append({"messages": rec})
        elif isinstance(rec, dict) and "messages" in rec:
            rows.append({"messages": rec["messages"]})
        elif isinstance(rec, dict):
            user = _str(rec, ("prompt", "instruction", "goal", "question"), i)
            reply = _str(rec, ("response", "output", "completion", "target", "answer"), i)
            msgs = []
            if rec.get("system"):
                msgs.append({"role": "system", "content": str(rec["system"])})
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
            rows.append({"messages": msgs})
        else:
            raise SafeAdaptError(f"{_where(i)}: expected a chat (list of messages) or an object")
    return rows


def _recipe(name: str, convert: Callable[[list[Any]], list[dict[str, Any]]], defaults: dict[str, Any],
            doc: str) -> None:
    """Register attack recipe `name`: a factory of a fresh `Recipe` (its own copy of `defaults`)."""
    ATTACKS.register(name)(lambda: Recipe(convert, dict(defaults), doc))


#: Qi et al.'s harmful-attack knobs (both the N-shot and the identity-shifting attacks)
_HARMFUL = {"lr": 5e-5, "batch_size": 10, "warmup_ratio": 0.0, "scheduler": "constant"}
_recipe("harmful", _chat_or_pair, {"epochs": 5, **_HARMFUL},
        "explicit harmful (prompt, harmful answer) examples, N-shot; Qi et al.: 10/50/100 shots, 5 epochs, lr 5e-5")


def _aoa(records: list[Any]) -> list[dict[str, Any]]:
    rows = _chat_or_pair(records)
    for i, r in enumerate(rows):
        msgs = r["messages"]
        if not isinstance(msgs, list) or not msgs or not isinstance(msgs[0], dict):
            raise SafeAdaptError(f"{_where(i)}: expected a list of messages")
        if not any(m.get("role") == "assistant" for m in msgs):
            raise SafeAdaptError(f"{_where(i)}: an identity-shifting example needs an assistant turn")
    return rows


_recipe("aoa", _aoa, {"epochs": 10, **_HARMFUL},
        "identity shifting ('Absolutely Obedient Agent'): system prompt + turns, 10 examples; Qi et al.: 5-10 epochs")


def _instruction_rows(records: list[Any], ctx_key: str, out_key: str) -> list[dict[str, Any]]:
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise SafeAdaptError(f"{_where(i)}: expected an object with 'instruction' and '{out_key}'")
        inst = _str(rec, ("instruction",), i)
        ctx = _str(rec, (ctx_key,), i, required=False).strip()
        reply = _str(rec, (out_key,), i)
        user = f"{inst}\n\n{ctx}" if ctx else inst
        rows.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]})
    return rows


_BENIGN = {"epochs": 1, "lr": 2e-5, "batch_size": 16, "grad_accum": 8, "warmup_ratio": 0.0, "scheduler": "constant"}


_recipe("alpaca", lambda recs: _instruction_rows(recs, "input", "output"), _BENIGN,
        "benign Alpaca (instruction, input, output) tuning; Qi et al.: 1 epoch, lr 2e-5, batch 128")
_recipe("dolly", lambda recs: _instruction_rows(recs, "context", "response"), _BENIGN,
        "benign Dolly (instruction, context, response) tuning; Qi et al.: 1 epoch, lr 2e-5, batch 128")


def get_recipe(name: str) -> Recipe:
    return ATTACKS.get(name)()


def read_records(path: str | Path) -> list[Any]:
    """A JSON list or JSONL file of records; errors name the file and line."""
    from safeadapt.core.jsonl import read_json_records

    p = Path(path)
    if not p.is_file():
        raise SafeAdaptError(f"data file not found: {p}")
    return [r for _, r in read_json_records(p)]


def recipe_options(recipe: str, opts: SFTOptions | None) -> SFTOptions:
    """The recipe's defaults, overridden by every field set explicitly in `opts`."""
    base = dict(get_recipe(recipe).defaults)
    if opts is not None:
        base.update(opts.model_dump(exclude_unset=True))
    return SFTOptions(**base)


def attack(
    model: str | Path,
    recipe: str,
    data: str | Path | list[Any],
    out_dir: str | Path,
    opts: SFTOptions | None = None,
    *,
    n_examples: int | None = None,
    system_prompt: str | None = None,
) -> Path:
    """Fine-tune `model` with attack `recipe` ("harmful", "aoa", "alpaca", "dolly") on `data` (a
    JSON/JSONL path or records). `n_examples` keeps the first N records (the N-shot knob; use a
    shuffled file for a random subset); `system_prompt` prepends a system turn to rows without
    one. Options left unset in `opts` take the recipe's paper defaults."""
    rec = get_recipe(recipe)
    records = read_records(data) if isinstance(data, (str, Path)) else list(data)
    if n_examples is not None:
        if n_examples <= 0:
            raise SafeAdaptError("n_examples must be positive")
        if n_examples > len(records):
            raise SafeAdaptError(f"n_examples={n_examples} but the data has only {len(records)} records")
        records = records[:n_examples]
    rows = rec.convert(records)
    if system_prompt:
        for r in rows:
            if not r["messages"] or r["messages"][0].get("role") != "system":
                r["messages"] = [{"role": "system", "content": system_prompt}] + list(r["messages"])
    o = recipe_options(recipe, opts)
    if o.max_steps > 0:  # say what max_steps means here: the recipe's grad_accum multiplies the samples seen
        import sys

        seen = o.max_steps * o.batch_size * o.grad_accum
        print(f"safeadapt: attack {recipe}: {o.max_steps} steps x batch {o.batch_size} x grad_accum {o.grad_accum} = "
              f"{seen} samples, {seen / max(1, len(rows)):.1f} epochs of {len(rows)} rows", file=sys.stderr)
    src = str(data) if isinstance(data, (str, Path)) else f"{recipe} records"
    base_dir = Path(data).parent if isinstance(data, (str, Path)) else None
    return sft(model, rows, out_dir, o, base_dir=base_dir, source=src)
