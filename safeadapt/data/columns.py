"""Column detection for users' files, shared by the dataset loaders and `safeadapt judge`: the
common names a prompt or a response column goes by, found case-insensitively, with one-line errors
naming the file and the columns seen when none or several (ambiguous) are there."""

from __future__ import annotations

from typing import Iterable, Sequence

from safeadapt.core.errors import SafeAdaptError

#: names a prompt column goes by in public sets (AdvBench goal, HarmBench Behavior, StrongREJECT
#: forbidden_prompt, Do-Not-Answer question, instruction-tuning sets instruction, plain text)
PROMPT_COLUMNS: tuple[str, ...] = ("prompt", "text", "question", "instruction", "goal", "Behavior", "forbidden_prompt")
#: names a model's reply goes by (eval's generations.jsonl "response", XSTest "completion")
RESPONSE_COLUMNS: tuple[str, ...] = ("completion", "response", "output", "generation", "answer")


def columns_of(rows: Iterable[dict]) -> list[str]:
    """Every column name seen in `rows`, in first-seen order (internal `_key` / `__error__` left out)."""
    return [c for c in dict.fromkeys(str(k) for r in rows for k in r) if c not in ("_key", "__error__")]


def find_column(columns: Sequence[str], aliases: Sequence[str], *, source: str, what: str = "prompt",
                hint: str = "", first_wins: bool = False, required: bool = True) -> str | None:
    """The column of `columns` that is `what`, by `aliases` (matched case-insensitively).

    The first alias (the canonical name) wins when present; otherwise exactly one other alias must
    match, or it is ambiguous: a one-line error naming `source`, the candidates and every column
    (with `first_wins` the earliest alias is taken instead). None matching: None, or with
    `required` a one-line error naming the aliases tried and the columns seen. `hint` says how to
    name the column explicitly (e.g. "pass --prompt-col")."""
    lower: dict[str, list[str]] = {}
    for c in columns:
        lower.setdefault(c.lower(), []).append(c)
    found: list[str] = []
    for a in aliases:
        for c in lower.get(a.lower(), []):
            if c not in found:
                found.append(c)
    seen = ", ".join(columns) or "(none)"
    tail = f"; {hint}" if hint else ""
    if not found:
        if required:
            raise SafeAdaptError(f"{source}: no {what} column (tried {', '.join(aliases)}); columns: {seen}{tail}")
        return None
    exact = [c for c in found if c.lower() == aliases[0].lower()]
    if len(found) == 1 or first_wins:
        return found[0]
    if len(exact) == 1:
        return exact[0]
    raise SafeAdaptError(
        f"{source}: ambiguous {what} column: {', '.join(found)} could each be it; columns: {seen}{tail}"
    )
