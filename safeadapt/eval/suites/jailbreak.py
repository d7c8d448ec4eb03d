"""Suite "jailbreak": harmful requests wrapped in every registered jailbreak style -> attack
success rate, overall, per category and per attack. Samples that already carry
`metadata["attack"]` (a pre-wrapped dataset override) are used as given; templates from a user's
file (`eval --jailbreak-templates FILE`, `SuiteContext.jailbreak_templates`) replace the built-in styles."""

from __future__ import annotations

from safeadapt.data.schema import Sample
from safeadapt.eval.suites.base import SUITES, JudgedRateSuite, SuiteContext, limit_items


@SUITES.register("jailbreak")
class Jailbreak(JudgedRateSuite):
    expands = True
    metric = "asr"
    wants_label = "harmful"
    builtin = "harmful"
    groups = ("attack",)

    def prepare(self, samples: list[Sample], ctx: SuiteContext) -> list[Sample]:
        from safeadapt.data.attacks import apply_jailbreaks

        if samples and all(s.metadata.get("attack") for s in samples):
            return samples
        # limit the base requests first so every attack style sees the same requests
        if ctx.limit:
            from safeadapt.data.attacks import JAILBREAKS

            n_styles = len(ctx.jailbreak_templates) if ctx.jailbreak_templates else len(JAILBREAKS.names())
            samples = limit_items(samples, max(1, ctx.limit // max(1, n_styles)))
        return apply_jailbreaks(samples, None, templates=ctx.jailbreak_templates)
