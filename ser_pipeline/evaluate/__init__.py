"""Evaluate a student (a training run or an ONNX file) with CCC, Pearson r and MAE.

What it does, in order (one module each):

1. **Pick the clips** (:mod:`~ser_pipeline.evaluate.selection`). For every corpus
   evaluated, the clips of the requested splits (default ``dev`` and ``test``) come from
   the ``splits`` table. A corpus with no rows in ``splits`` is evaluated whole, under the
   split name ``all``. Corpora default to the run's training corpora (``run.json``), else
   every corpus in ``splits``.
2. **Predict, streaming** (:mod:`~ser_pipeline.evaluate.predict`, with the models of
   :mod:`~ser_pipeline.evaluate.predictors`). Clips missing a prediction for this model are
   sharded, each shard's audio is read with :meth:`Lake.audio_for` (never the whole audio
   table), and each clip goes through the student runner's clip rule
   (:func:`ser_pipeline.onnx_model.predict_clip`: the windows labeling uses, averaged by
   duration), the same as ``ser predict``. Each shard's predictions land in
   ``predictions/`` as one part. Predictions already there for the same model are reused,
   so an interrupted evaluation resumes and a repeated one predicts nothing.
3. **Score** (:mod:`~ser_pipeline.evaluate.score`). Against each teacher's latest labels
   (the run's teacher, the ``teacher_id`` given, or every teacher that labeled the clips)
   and against the latest ``human_labels`` wherever they exist: one ``metrics`` row per
   (model, teacher, corpus, split, reference, dimension). Each (model, corpus, split,
   reference, teacher) group is one part whose key hashes the model identity and the exact
   data scored (clip ids, speakers, predictions, reference values), so evaluating the same
   model on the same data again writes nothing. Every row carries a bootstrap interval
   (speakers resampled where ``audio.speaker`` is known, clips otherwise); speaker_mean
   rows add the mean of per-speaker CCCs, and where ``audio.gender`` is known the
   ``fairness`` table gets CCC per group and the largest gap
   (``docs/stages/statistics.md``).

A clip that cannot be decoded or that the model rejects is quarantined (``stage`` =
``evaluate``) and left out of the scores; if the model fails on *every* clip, that is a
model problem and :class:`EvaluateError` is raised instead.

Examples:
    >>> import tempfile
    >>> from ser_pipeline.lake import Lake
    >>> evaluate(Lake.open(tempfile.mkdtemp()), model="missing.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ser_pipeline.evaluate.errors.EvaluateError: ONNX model missing.onnx does not exist...
"""

from ser_pipeline.evaluate.compare import (
    ComparisonReport,
    ModelComparison,
    PairedData,
    compare,
    compare_paired,
    paired_data,
    predictor_for,
)
from ser_pipeline.evaluate.errors import EvaluateError
from ser_pipeline.evaluate.predict import ShardOutcome, predict_shard
from ser_pipeline.evaluate.predictors import (
    ModelIdentity,
    OnnxPredictor,
    Predictor,
    TorchPredictor,
    load_predictor,
)
from ser_pipeline.evaluate.score import (
    Bootstrap,
    SelectionScore,
    fairness_table,
    read_predictions,
    results_table,
    score_selection,
)
from ser_pipeline.evaluate.selection import (
    WHOLE_CORPUS_SPLIT,
    ClipMetadata,
    Selection,
    clip_metadata,
    latest_references,
    select_clips,
)
from ser_pipeline.evaluate.stage import Predicted, evaluate, predict_missing, windowed

__all__ = [
    "WHOLE_CORPUS_SPLIT", "Bootstrap", "ClipMetadata", "ComparisonReport", "EvaluateError",
    "ModelComparison", "ModelIdentity", "OnnxPredictor", "PairedData", "Predicted",
    "Predictor", "Selection", "SelectionScore", "ShardOutcome", "TorchPredictor",
    "clip_metadata", "compare", "compare_paired", "evaluate", "fairness_table",
    "latest_references", "load_predictor", "paired_data", "predict_missing", "predict_shard",
    "predictor_for", "read_predictions", "results_table", "score_selection", "select_clips",
    "windowed",
]
