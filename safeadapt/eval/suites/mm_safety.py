"""Suite "mm-safety": harmful requests delivered through images -> attack success rate, overall
and per modality/attack: FigStep-style typographic images (the request rendered as "Steps to ...
1. 2. 3." with a benign text prompt) and benign image + harmful text pairs. Needs a VLM: a
text-only model is skipped with the reason recorded. Samples that already have images (a dataset
override such as the official FigStep images) are used as given."""

from __future__ import annotations

from safeadapt.data.schema import Sample
from safeadapt.eval.suites.base import SUITES, JudgedRateSuite, SuiteContext, limit_items


@SUITES.register("mm-safety")
class MMSafety(JudgedRateSuite):
    metric = "asr"
    wants_label = "harmful"
    builtin = "harmful"
    groups = ("modality", "attack")
    expands = True

    def skip_reason(self, items: list[Sample], ctx: SuiteContext) -> str | None:
        if not ctx.supports_images:
            return "model is text-only (its processor has no image processor); mm-safety needs a vision-language model"
        return None

    def prepare(self, samples: list[Sample], ctx: SuiteContext) -> list[Sample]:
        from safeadapt.data.typography import figstep_samples, image_text_samples

        with_img = []
        for s in samples:
            if s.images:
                meta = {"modality": "image+text", **s.metadata}
                meta.setdefault("attack", str(meta["modality"]))
                with_img.append(s.model_copy(update={"metadata": meta}))
        text = [s for s in samples if not s.images]
        if ctx.limit and text:
            text = limit_items(text, max(1, ctx.limit // 2))
        if not text:
            return with_img
        img_dir = ctx.work_dir / "images"
        return with_img + figstep_samples(text, img_dir / "figstep") + image_text_samples(text, img_dir / "scenes")
