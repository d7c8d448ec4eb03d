"""From diagnosis to repair: score each decoder layer by its share of the adaptation task vector's
energy (weights.json) and of the refusal-direction drift (activations.json), take the contiguous
range that stands out (maximum-sum run of the scores minus their mean) and write a linear merge
recipe that `safeadapt merge` accepts, weighting the safety-tuned model up only inside that range."""

from __future__ import annotations

from typing import Any

import yaml

from safeadapt.core.errors import SafeAdaptError


def weight_energy(weights: dict[str, Any], pair: str) -> dict[int, float]:
    """Layer -> share of the pair's squared delta over all decoder layers."""
    out = {r["layer"]: float(r["energy_share"]) for r in weights.get("layers", []) if r["pair"] == pair}
    if not out:
        raise SafeAdaptError(
            f"weights.json has no per-layer totals for pair {pair!r} (pairs: {', '.join(weights.get('pairs', []))})"
        )
    return out


def direction_drift(
    activations: dict[str, Any], n_blocks: int, target: str | None = None
) -> tuple[str, dict[int, float]]:
    """Block -> share of the refusal-direction drift added by that block: drift(l) = 1 - cos of the
    first model's and the target model's directions at hidden index l; block i owns drift(i + 1) - drift(i) when
    positive."""
    cross = [c for c in activations.get("cross", []) if "per_layer" in c]
    if target:
        cross = [c for c in cross if c["pair"].endswith("->" + target)]
    if not cross:
        raise SafeAdaptError(
            "activations.json has no cross-model records"
            + (f" for model {target!r}" if target else "")
            + " (run the activation diagnosis on the aligned and the adapted model)"
        )
    c = cross[0]
    drift = [1.0 - (r["cos_dir"] if r["cos_dir"] is not None else 1.0) for r in c["per_layer"]]
    inc = {i: max(0.0, drift[i + 1] - drift[i]) for i in range(min(n_blocks, len(drift) - 1))}
    tot = sum(inc.values())
    return c["pair"], {i: v / tot if tot > 0 else 0.0 for i, v in inc.items()}


def best_range(scores: list[float]) -> tuple[int, int]:
    """The contiguous run maximising sum(score - mean(score)) (Kadane); never empty."""
    if not scores:
        raise SafeAdaptError("no layer scores to choose a range from")
    mean = sum(scores) / len(scores)
    best, best_lr, cur, start = float("-inf"), (0, 0), 0.0, 0
    for i, s in enumerate(scores):
        if cur <= 0:
            cur, start = 0.0, i
        cur += s - mean
        if cur > best:
            best, best_lr = cur, (start, i)
    return best_lr


def recommend(weights: dict[str, Any], activations: dict[str, Any] | None = None, *, pair: str | None = None,
              adapted: str | None = None, safety: str | None = None, inside: float = 0.9, outside: float = 0.25,
              dtype: str = "float32") -> tuple[dict[str, Any], dict[str, Any]]:
    """(recipe dict for `safeadapt merge`, explanation dict). Defaults for a 3-model weight run
    A -> B -> C: the adaptation pair A->B, adapted = B, safety-tuned = C."""
    labels = weights.get("labels", [])
    pair = pair or (weights.get("pairs") or [None])[0]
    energy = weight_energy(weights, pair)
    n_blocks = max(energy) + 1
    scores = {i: energy.get(i, 0.0) for i in range(n_blocks)}
    explain: dict[str, Any] = {"pair": pair, "weight_energy_share": scores}
    if activations is not None:
        target = pair.split("->")[-1] if pair else None
        names = [m["label"] for m in activations.get("models", [])]
        cpair, drift = direction_drift(activations, n_blocks, target if target in names else None)
        explain.update(activation_pair=cpair, direction_drift_share=drift)
        scores = {i: (scores[i] + drift.get(i, 0.0)) / 2 for i in range(n_blocks)}
    lo, hi = best_range([scores[i] for i in range(n_blocks)])
    models = weights.get("models", {})
    adapted = adapted or (models.get(labels[1]) if len(labels) >= 2 else None)
    safety = safety or (models.get(labels[2]) if len(labels) == 3 else None)
    if not adapted or not safety:
        raise SafeAdaptError("name the adapted and the safety-tuned models (--adapted, --safety); a 3-model weight "
                             "diagnosis A B C uses B and C")
    for name, v in (("inside", inside), ("outside", outside)):
        if not 0.0 <= v <= 1.0:
            raise SafeAdaptError(f"--{name} must be a safety weight in [0, 1], got {v}")
    recipe = guided_recipe(adapted, safety, range(lo, hi + 1), inside=inside, outside=outside, dtype=dtype)
    explain.update(
        combined_score=scores, layers=[lo, hi], inside=inside, outside=outside, adapted=adapted, safety=safety
    )
    return recipe, explain


def guided_recipe(
    adapted: str, safety: str, layers: Any, *, inside: float, outside: float, dtype: str = "float32"
) -> dict[str, Any]:
    """Linear merge: safety weight `inside` on decoder layers in `layers`, `outside` everywhere else
    (filters match canonical names `model.layers.N.`, which select the language tower in LLMs and VLMs alike)."""
    def weights(w_in: float, w_out: float) -> list[dict[str, Any]]:
        return [{"filter": f"model.layers.{i}.", "value": round(w_in, 6)} for i in layers] + [
            {"value": round(w_out, 6)}
        ]

    return {"merge_method": "linear", "dtype": dtype, "models": [
        {"model": str(adapted), "parameters": {"weight": weights(1 - inside, 1 - outside)}},
        {"model": str(safety), "parameters": {"weight": weights(inside, outside)}}]}


def per_layer_weights(scores: dict[int, float], *, lo: float, hi: float) -> dict[int, float]:
    """Safety weight per decoder layer, lo + (hi - lo) * score / max(score): the layer the diagnosis
    blames most (task-vector energy + refusal-direction drift) gets `hi`, a blameless one `lo`."""
    top = max(scores.values(), default=0.0)
    return {int(i): round(lo + (hi - lo) * (s / top if top > 0 else 0.0), 6) for i, s in sorted(scores.items())}


def per_layer_recipe(adapted: str, safety: str, weights: dict[int, float], *, outside: float,
                     dtype: str = "float32") -> dict[str, Any]:
    """Linear merge with safety weight `weights[i]` in decoder layer i and `outside` on every other tensor."""
    def table(f: Any) -> list[dict[str, Any]]:
        return [{"filter": f"model.layers.{i}.", "value": round(f(w), 6)} for i, w in sorted(weights.items())] + [
            {"value": round(f(outside), 6)}
        ]

    return {"merge_method": "linear", "dtype": dtype, "models": [
        {"model": str(adapted), "parameters": {"weight": table(lambda w: 1 - w)}},
        {"model": str(safety), "parameters": {"weight": table(lambda w: w)}}]}


def recipe_yaml(recipe: dict[str, Any], explain: dict[str, Any]) -> str:
    lo, hi = explain["layers"]
    head = (
        f"# safeadapt diagnose recommend: restore safety in decoder layers {lo}-{hi}, where the task vector "
        f"({explain['pair']})\n# and the refusal-direction drift are largest. Safety weight {explain['inside']} "
        f"inside, "
        f"{explain['outside']} outside.\n# Run: safeadapt merge recommend.yaml --out DIR (see recommend.json for the "
        f"scores)\n"
    )
    return head + yaml.safe_dump(recipe, sort_keys=False)
