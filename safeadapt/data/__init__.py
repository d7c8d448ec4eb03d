"""Data: one sample schema, loaders for local files / hub ids / named real formats, the project's
own built-in suites, and attack transforms (jailbreak wrappers, FigStep-style typography).

Modules: `schema` (Sample), `loaders` (load_samples, ADAPTERS) over `readers` (file / hub rows),
`adapters` (registry, table adapter) and `benchmarks` (named formats), `builtin` (load_builtin,
CATEGORIES) over `builtin_safety` / `builtin_facts` (the suites' data), `attacks` (JAILBREAKS,
apply_jailbreaks), `typography` (render_typographic, figstep_samples, image_text_samples)."""

from safeadapt.data.schema import Sample

__all__ = ["Sample"]
