"""The shared calibration pass of the repair methods: calibration datasets tokenised with loss on
response tokens only (`calibration_rows`, `tokenize`), then one scoring pass over a model, Wanda
input-feature norms ||X_j||_2 (`wanda_norms`) or SNIP |W| * sum_s |dL_s/dW| (`snip_scores`), whole
or one decoder layer at a time (`wanda_norms_by_layer`, `snip_scores_by_layer`; `NotLayerwise` when
a model's structure is not covered), in a spawned child when the model is large (`CalibrationJob`,
`compute_scores`, `compute_scores_in_child`, read back lazily by `LazyScores`). Scores are keyed by
canonical tensor names (safeadapt.io.names), so a LLaVA VLM and its text LLM share them."""

from safeadapt.repair.calibrate.child import CalibrationJob, LazyScores, compute_scores, compute_scores_in_child
from safeadapt.repair.calibrate.common import NotLayerwise, language_linears
from safeadapt.repair.calibrate.layers import wanda_norms_by_layer
from safeadapt.repair.calibrate.rows import batches, calibration_rows, tokenize
from safeadapt.repair.calibrate.scores import snip_scores, wanda_norms
from safeadapt.repair.calibrate.snip import row_chunks, snip_scores_by_layer
from safeadapt.repair.calibrate.vision import vision_of

__all__ = [
    "CalibrationJob",
    "LazyScores",
    "NotLayerwise",
    "batches",
    "calibration_rows",
    "compute_scores",
    "compute_scores_in_child",
    "language_linears",
    "row_chunks",
    "snip_scores",
    "snip_scores_by_layer",
    "tokenize",
    "vision_of",
    "wanda_norms",
    "wanda_norms_by_layer",
]
