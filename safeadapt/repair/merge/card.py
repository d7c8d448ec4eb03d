"""Model card (README.md) for a merged model: YAML front matter (base_model, tags incl. merge,
library_name, input fingerprints, tool version) loadable by huggingface_hub's ModelCard, and a body
with the merge recipe."""

from __future__ import annotations

from typing import Any

import yaml

from safeadapt.core.provenance import versions


def render_card(*, recipe_yaml: str, method: str, reference: str, inputs: dict[str, str], base_model: str | None,
                models: list[str], output_kind: str, dtype: str, notes: list[str], kind: str = "merge",
                roles: dict[str, str] | None = None) -> str:
    """`kind` "merge" or "repair" (the command and tags); `roles` labels inputs (repair: adapted, aligned...)."""
    v = versions()
    front: dict[str, Any] = {
        "base_model": [base_model] if base_model else list(models),
        "library_name": "transformers",
        "tags": [kind, "safeadapt", method, output_kind],
        f"{kind}_method": method,
        "safeadapt": {"version": v.get("safeadapt", "unknown"), "inputs_sha256_fast": inputs, "dtype": dtype},
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        "# Merged model" if kind == "merge" else "# Repaired model",
        "",
        f"Produced by `safeadapt {kind}` (safeadapt {v.get('safeadapt', '?')}, transformers "
        f"{v.get('transformers', '?')}, "
        f"torch {v.get('torch', '?')}) with the **{method}** method ({reference}).",
        "",
        "## Inputs",
        "",
    ]
    for m in models:
        tag = f" ({roles[m]})" if roles and m in roles else (" (base)" if m == base_model else "")
        lines.append(f"- `{m}`{tag} — fingerprint `{inputs.get(m, '?')[:16]}`")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Recipe", "", "```yaml", recipe_yaml.rstrip(), "```", ""]
    return "\n".join(lines)
