"""The robustness stage: a model on perturbed dev clips, recorded in ``robustness/``.

:func:`run_robustness` wires :func:`ser_pipeline.robustness.robustness_suite` to the lake
and to evaluation's models and windowing:

1. **The model** is what ``ser evaluate`` loads (:func:`ser_pipeline.evaluate.load_predictor`):
   a run's torch student, an ONNX file, a model folder or a ``registry://`` URI (through
   the one student runner, :class:`ser_pipeline.onnx_model.OnnxModel`). Each clip, clean
   or perturbed, goes through the clip rule :func:`ser_pipeline.onnx_model.predict_clip`
   with evaluation's windows, so the clean figures equal ``ser evaluate``'s.
2. **The clips** are one split (default ``dev``) of each corpus, chosen as evaluation
   chooses them (:func:`ser_pipeline.evaluate.select_clips`), at most ``max_clips`` per
   corpus (a seeded subset: the clips with the smallest ``sha256(seed:audio_id)``). Their
   audio stays FLAC-compressed in memory and is decoded when a batch needs it.
3. **The reference** is the latest teacher label (the model's teacher, or ``teacher_id``)
   or the latest human label of each clip, as in evaluation
   (:func:`ser_pipeline.evaluate.latest_references`). Intervals resample speakers where
   the lake knows them (``audio.speaker``), clips otherwise.
4. **Clean predictions** already stored by ``ser evaluate`` for the same model and
   windowing (``predictions/``) are reused; otherwise they are computed.
5. **Rows** (:data:`ser_pipeline.schemas.ROBUSTNESS`): one part per (model, corpus, split,
   reference, teacher), whose key hashes the model name and key, the clips, their
   references and the options. Re-running with the same inputs finds the part and
   computes nothing (``reused``); the figures are read back.

A clip whose audio does not decode or is empty is left out and counted in ``notices``
(``ser evaluate`` quarantines it); a clip without a reference is left out and counted; a
model error or non-finite output on one perturbed clip makes that clip's prediction NaN,
which the suite drops for that perturbation, and is counted.

The package: :mod:`~ser_pipeline.robustness_stage.run` (the drivers),
:mod:`~ser_pipeline.robustness_stage.selection` (one suite run),
:mod:`~ser_pipeline.robustness_stage.records` (what a run returns),
:mod:`~ser_pipeline.robustness_stage.publish` (the publish hook) and
:mod:`~ser_pipeline.robustness_stage.errors`.

Examples:
    >>> import tempfile
    >>> from ser_pipeline.perturb import PERTURBATIONS
    >>> from ser_pipeline.lake import Lake
    >>> lake = Lake.open(tempfile.mkdtemp())
    >>> run_robustness(lake, model="m.onnx", reference="x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ser_pipeline.robustness_stage.errors.RobustnessError: unknown reference 'x': use 'teacher' or...
    >>> sorted(PERTURBATIONS)[:2]  # the suite's default: every perturbation
    ['gain_minus20db', 'gain_plus6db_clipped']
"""

from ser_pipeline.robustness_stage.errors import RobustnessError
from ser_pipeline.robustness_stage.publish import (
    manifest_sections,
    publish_with_robustness,
    robustness_of_export,
)
from ser_pipeline.robustness_stage.records import RobustnessRun, SuiteRecord
from ser_pipeline.robustness_stage.run import (
    DEFAULT_MAX_CLIPS,
    REFERENCES,
    run_robustness,
    write_robustness,
)
from ser_pipeline.robustness_stage.selection import robustness_key, subset

__all__ = ["DEFAULT_MAX_CLIPS", "REFERENCES", "RobustnessError", "RobustnessRun",
           "SuiteRecord", "manifest_sections", "publish_with_robustness", "robustness_key",
           "robustness_of_export", "run_robustness", "subset", "write_robustness"]
