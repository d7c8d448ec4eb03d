"""Study YAML reading: `parse_yaml` loads the text with syntax and duplicate-key errors as
file:line and the line of each stage; `where_prefix` and `pydantic_msg` shape the one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from safeadapt.core.errors import SafeAdaptError


def where_prefix(file: Path | None, line: int | None) -> str:
    if file is None:
        return "study: " if line is None else f"study:{line}: "
    return f"{file}: " if line is None else f"{file}:{line}: "


def parse_yaml(text: str, file: Path | None) -> tuple[Any, dict[str, int]]:
    """Load YAML; return (data, stage name -> 1-based line). Syntax errors name file:line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        ctx = getattr(e, "context", None)
        msg = f"{problem} ({ctx})" if ctx else str(problem)
        if mark is not None:
            loc = f"{file or 'study'}:{mark.line + 1}:{mark.column + 1}"
        else:
            loc = f"{file or 'study'}"
        raise SafeAdaptError(f"{loc}: YAML syntax error: {msg}") from None
    _check_duplicate_keys(node, file)
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "stages" and isinstance(v, yaml.MappingNode):
                for sk, _ in v.value:
                    if isinstance(sk, yaml.ScalarNode):
                        lines[str(sk.value)] = sk.start_mark.line + 1
    return data, lines


def _check_duplicate_keys(node: Any, file: Path | None) -> None:
    """YAML silently keeps the last of duplicate keys; a duplicate stage name would vanish."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    raise SafeAdaptError(f"{file or 'study'}:{k.start_mark.line + 1}: duplicate key {k.value!r}")
                seen.add(k.value)
            _check_duplicate_keys(v, file)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _check_duplicate_keys(v, file)


def pydantic_msg(e: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"])
        loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (+{len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return "; ".join(parts) + more
