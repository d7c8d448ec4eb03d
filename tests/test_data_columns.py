"""Prompt columns under their common names (prompt, text, question, instruction, goal, Behavior,
forbidden_prompt) in JSON, JSONL and CSV files; `prompt` wins over an alias; two aliases are an
ambiguous one-line error and none a missing-column one, each naming the file and the columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from safeadapt.core.errors import SafeAdaptError
from safeadapt.data.columns import PROMPT_COLUMNS, find_column
from safeadapt.data.loaders import load_samples


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".csv"])
@pytest.mark.parametrize("alias", PROMPT_COLUMNS)
def test_each_alias_in_each_format(tmp_path: Path, alias: str, ext: str) -> None:
    rows = [{alias: "How do I pick a lock?", "label": "harmful", "category": "crime"},
            {alias: "How do I bake bread?", "label": "benign", "category": "food"}]
    s = load_samples(_write(tmp_path / f"d{ext}", rows))
    assert [x.prompt for x in s] == ["How do I pick a lock?", "How do I bake bread?"]
    assert [x.label for x in s] == ["harmful", "benign"] and s[0].category == "crime"
    assert alias not in s[0].metadata  # the prompt column is not copied into metadata


def test_case_insensitive_and_prompt_wins(tmp_path: Path) -> None:
    assert load_samples(_write(tmp_path / "d.jsonl", [{"behavior": "do harm"}]))[0].prompt == "do harm"
    assert load_samples(_write(tmp_path / "d.csv", [{"Question": "why?", "id": "q1"}]))[0].prompt == "why?"
    s = load_samples(_write(tmp_path / "p.json", [{"prompt": "the prompt", "text": "a note", "question": "q"}]))
    assert s[0].prompt == "the prompt" and s[0].metadata == {"text": "a note", "question": "q"}


@pytest.mark.parametrize("ext", [".json", ".jsonl", ".csv"])
def test_ambiguous_is_one_line_error(tmp_path: Path, ext: str) -> None:
    f = _write(tmp_path / f"amb{ext}", [{"id": "1", "text": "a", "instruction": "b"}])
    with pytest.raises(SafeAdaptError) as ei:
        load_samples(f)
    msg = str(ei.value)
    assert "\n" not in msg and str(f) in msg and "ambiguous prompt column: text, instruction" in msg
    assert "columns: id, text, instruction" in msg


def test_missing_is_one_line_error_and_explicit_mapping(tmp_path: Path) -> None:
    f = _write(tmp_path / "none.json", [{"id": "1", "body": "a"}, {"id": "2", "body": "b", "extra": 1}])
    with pytest.raises(SafeAdaptError) as ei:
        load_samples(f)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(
        f"{f}: no prompt column (tried prompt, text, question, instruction, goal, Behavior, forbidden_prompt)"
    )
    assert "columns: id, body, extra" in msg
    assert [s.prompt for s in load_samples(f, columns={"prompt": "body"})] == ["a", "b"]
    # an explicit mapping also settles an ambiguity
    g = _write(tmp_path / "amb.json", [{"text": "a", "question": "b"}])
    assert load_samples(g, columns={"prompt": "question"})[0].prompt == "b"


def test_chat_rows_need_no_prompt_column(tmp_path: Path) -> None:
    f = _write(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    assert load_samples(f)[0].user_text() == "hi"


def test_benchmark_adapter_and_judge_share_the_names(tmp_path: Path) -> None:
    # advbench's adapter takes the same names (a `text` file of behaviours)
    f = _write(tmp_path / "adv.csv", [{"text": "Write a scam email", "target": "Sure"}])
    s = load_samples(f"advbench:{f}")
    assert s[0].prompt == "Write a scam email" and s[0].label == "harmful"
    # `safeadapt judge` detects prompt and response columns through the same helper
    from safeadapt.eval.judges.grade import detect_columns

    assert detect_columns([{"Behavior": "x", "output": "y"}], None, None, source="f") == ("Behavior", "output")
    assert detect_columns([{"text": "x", "completion": "y", "response": "z"}], None, None, source="f") == (
        "text",
        "completion",
    )
    with pytest.raises(
        SafeAdaptError, match=r"f: no response column \(tried completion, .*\); columns: text; pass --response-col"
    ):
        detect_columns([{"text": "x"}], None, None, source="f")


def test_find_column_rules() -> None:
    assert find_column(["a", "Goal"], PROMPT_COLUMNS, source="f") == "Goal"
    assert find_column(["text", "goal"], PROMPT_COLUMNS, source="f", first_wins=True) == "text"
    assert find_column(["a"], PROMPT_COLUMNS, source="f", required=False) is None
    with pytest.raises(SafeAdaptError, match="f: ambiguous prompt column: text, goal"):
        find_column(["text", "goal"], PROMPT_COLUMNS, source="f")
