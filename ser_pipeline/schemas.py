"""Arrow schemas of the lake's tables: the data contract every stage writes to.

Labels are always ordered arousal, dominance, valence (the audEERING teacher's order).
"""

from __future__ import annotations

import json

import pyarrow as pa

LABELS: tuple[str, str, str] = ("arousal", "dominance", "valence")
SAMPLE_RATE = 16_000

_ts = pa.timestamp("us", tz="UTC")
AUDIO_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

# Field groups several tables share, so a column means the same (name, type, place) in each.
# The three dimensions, in LABELS order: a label, prediction or score per dimension.
_DIMENSIONS = [(label, pa.float64()) for label in LABELS]
# Who produced a figure: the student run and the teacher it was distilled from (human rows:
# the model's teacher).
_RUN = [("run_id", pa.string()), ("student", pa.string()), ("teacher_id", pa.string())]
# What a figure was computed on.
_SCOPE = [
    ("corpus", pa.string()),
    ("split", pa.string()),  # dev | test | ... | all (corpus without splits)
    ("split_name", pa.string()),  # which split definition (e.g. "speaker-hash-v1")
    ("reference", pa.string()),  # teacher | human
]
# How a bootstrap interval was computed (ser_pipeline.stats).
_INTERVAL = [
    ("ci_level", pa.float64()),  # e.g. 0.95
    ("ci_method", pa.string()),  # e.g. percentile
    ("ci_unit", pa.string()),  # speaker | clip: what the bootstrap resampled
    ("ci_units", pa.int64()),  # how many speakers or clips were resampled
    ("ci_resamples", pa.int64()),
]

# HF datasets reads this key to restore feature types, so the `audio` column loads as
# `datasets.Audio` (16 kHz) without any cast by the user.
_HF_FEATURES = {
    "audio_id": {"dtype": "string", "_type": "Value"},
    "audio": {"sampling_rate": SAMPLE_RATE, "_type": "Audio"},
    "corpus": {"dtype": "string", "_type": "Value"},
    "source_path": {"dtype": "string", "_type": "Value"},
    "duration_s": {"dtype": "float64", "_type": "Value"},
    "orig_sample_rate": {"dtype": "int32", "_type": "Value"},
    "orig_channels": {"dtype": "int32", "_type": "Value"},
    "orig_format": {"dtype": "string", "_type": "Value"},
    "speaker": {"dtype": "string", "_type": "Value"},
    "split": {"dtype": "string", "_type": "Value"},
    "is_silent": {"dtype": "bool", "_type": "Value"},
    "ingested_at": {"dtype": "timestamp[us, tz=UTC]", "_type": "Value"},
    "gender": {"dtype": "string", "_type": "Value"},
}

AUDIO = pa.schema(
    [
        ("audio_id", pa.string()),
        ("audio", AUDIO_STRUCT),
        ("corpus", pa.string()),
        ("source_path", pa.string()),
        ("duration_s", pa.float64()),
        ("orig_sample_rate", pa.int32()),
        ("orig_channels", pa.int32()),
        ("orig_format", pa.string()),
        ("speaker", pa.string()),
        ("split", pa.string()),
        ("is_silent", pa.bool_()),
        ("ingested_at", _ts),
        # The speaker's gender where the corpus says it (normalised to "female"/"male",
        # other values lower-cased; ser_pipeline.recipes.core.normalise_gender); null where
        # it does not, and in parts written before the column existed.
        ("gender", pa.string()),
    ],
    metadata={"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})},
)

HUMAN_LABELS = pa.schema(
    [
        ("audio_id", pa.string()),
        ("corpus", pa.string()),
        *_DIMENSIONS,
        ("source_scale", pa.string()),  # e.g. "1-7": the range normalised to 0..1
        ("ingested_at", _ts),
    ]
)

QUARANTINE = pa.schema(
    [
        ("corpus", pa.string()),
        ("source_path", pa.string()),
        ("audio_id", pa.string()),  # null when the bytes could not be read
        ("stage", pa.string()),  # ingest | label | ...
        # label rows: the teacher that rejected the clip (older rows: null, the teacher is
        # a "teacher <id>: " prefix of the message; ser_pipeline.quarantine reads both)
        ("teacher_id", pa.string()),
        ("reason", pa.string()),  # stable code, e.g. "truncated", "nan_samples"
        ("message", pa.string()),  # the decoder's / model's own words
        ("quarantined_at", _ts),
    ]
)

TEACHER_LABELS = pa.schema(
    [
        ("audio_id", pa.string()),
        ("teacher_id", pa.string()),
        ("teacher_sha256", pa.string()),
        *_DIMENSIONS,
        ("n_windows", pa.int32()),
        ("labeled_at", _ts),
        ("run_id", pa.string()),
    ]
)

SPLITS = pa.schema(
    [
        ("audio_id", pa.string()),
        ("corpus", pa.string()),
        ("split", pa.string()),  # train | dev | test
        ("split_name", pa.string()),  # which split definition (e.g. "speaker-hash-v1")
    ]
)

# One row per (model, clip): written by ``ser evaluate``. ``model_key`` identifies the
# prediction function (weights + windowing); analysts join ``splits`` for the split.
PREDICTIONS = pa.schema(
    [
        ("model_key", pa.string()),
        ("model", pa.string()),  # run id, registry name@version or ONNX file name
        ("run_id", pa.string()),
        ("audio_id", pa.string()),
        ("corpus", pa.string()),
        *_DIMENSIONS,
        ("n_windows", pa.int32()),
        ("predicted_at", _ts),
    ]
)

# One row per (model, teacher, corpus, split, reference, dimension) and evaluation.
# Undefined metrics (n < 2, constant inputs) are NULL, never NaN.
METRICS = pa.schema(
    [
        ("eval_id", pa.string()),  # hash of model identity + the exact data scored
        ("model", pa.string()),  # run id, registry name@version or ONNX file name
        ("model_key", pa.string()),
        ("model_format", pa.string()),  # torch | onnx
        *_RUN,
        *_SCOPE,
        ("dimension", pa.string()),  # arousal | dominance | valence
        ("ccc", pa.float64()),
        ("pearson", pa.float64()),
        ("mae", pa.float64()),
        ("n", pa.int64()),
        ("model_params", pa.int64()),
        ("model_bytes", pa.int64()),
        ("evaluated_at", _ts),
        # Added with bootstrap intervals (ser_pipeline.stats); NULL in rows written before.
        # global: CCC over all clips (the paper's figure); speaker_mean: the mean of
        # per-speaker CCCs (then pearson/mae and their intervals are NULL).
        ("aggregation", pa.string()),
        ("ccc_lo", pa.float64()),
        ("ccc_hi", pa.float64()),
        ("pearson_lo", pa.float64()),
        ("pearson_hi", pa.float64()),
        ("mae_lo", pa.float64()),
        ("mae_hi", pa.float64()),
        *_INTERVAL,
    ]
)

# Fairness slices written by ``ser evaluate`` where the scored clips carry a group
# attribute (``audio.gender``): per (evaluation, attribute, dimension) one ``kind='group'``
# row per group and one ``kind='gap'`` row (best group minus worst, both picked on the data).
# ``eval_id`` is the metrics part the slices belong to.
FAIRNESS = pa.schema(
    [
        ("eval_id", pa.string()),
        ("model", pa.string()),
        ("model_key", pa.string()),
        *_RUN,
        *_SCOPE,
        ("attribute", pa.string()),  # e.g. gender
        ("kind", pa.string()),  # group | gap
        ("group_value", pa.string()),  # the group (kind='group'); NULL on gap rows
        ("best_group", pa.string()),  # gap rows: the group with the higher CCC
        ("worst_group", pa.string()),  # gap rows: the group with the lower CCC
        ("dimension", pa.string()),
        ("ccc", pa.float64()),  # group rows: the group's CCC; gap rows: best minus worst
        ("ccc_lo", pa.float64()),
        ("ccc_hi", pa.float64()),
        ("n", pa.int64()),  # clips in the group (gap rows: in both groups)
        # The bootstrap resamples within each group; ci_units: the units in the group (gap
        # rows: the smaller group's).
        *_INTERVAL,
        ("evaluated_at", _ts),
    ]
)

# Paired comparisons of two models on the same clips (``ser compare`` and the publish
# gate): one row per (comparison, dimension), dimension ``mean`` being the mean of A/D/V.
# delta = CCC(model_a) - CCC(model_b) with a paired bootstrap interval.
COMPARISONS = pa.schema(
    [
        ("comparison_id", pa.string()),  # hash of both model keys + the exact data compared
        ("purpose", pa.string()),  # compare | gate
        ("model_a", pa.string()),
        ("model_a_key", pa.string()),
        ("model_b", pa.string()),
        ("model_b_key", pa.string()),
        *_SCOPE,
        ("teacher_id", pa.string()),
        ("dimension", pa.string()),  # arousal | dominance | valence | mean
        ("n", pa.int64()),
        ("ccc_a", pa.float64()),
        ("ccc_b", pa.float64()),
        ("delta", pa.float64()),
        ("delta_lo", pa.float64()),
        ("delta_hi", pa.float64()),
        ("verdict", pa.string()),  # better | worse | not distinguishable (A relative to B)
        *_INTERVAL,
        ("compared_at", _ts),
    ]
)

# Written by ``ser robustness`` (ser_pipeline.robustness_stage): one row per (model, corpus,
# split, reference, teacher, perturbation, dimension) and suite run. The clean figures repeat
# on every perturbation's rows; undefined figures are NULL, never NaN.
ROBUSTNESS = pa.schema(
    [
        ("robustness_id", pa.string()),  # hash of model + clips + references + options
        ("model", pa.string()),  # run id, registry name@version or ONNX file name
        ("model_key", pa.string()),  # the same key as in predictions/metrics
        ("model_format", pa.string()),  # torch | onnx
        ("model_file", pa.string()),  # ONNX file run (model.onnx | model.int8.onnx | ...)
        *_RUN,
        *_SCOPE,
        ("perturbation", pa.string()),  # a name in ser_pipeline.perturb.PERTURBATIONS
        ("description", pa.string()),
        ("dimension", pa.string()),
        ("clean_ccc", pa.float64()),  # CCC vs the reference on clean audio
        ("clean_ccc_lo", pa.float64()),
        ("clean_ccc_hi", pa.float64()),
        ("perturbed_ccc", pa.float64()),
        ("perturbed_ccc_lo", pa.float64()),
        ("perturbed_ccc_hi", pa.float64()),
        ("ccc_drop", pa.float64()),  # clean - perturbed, with a paired interval
        ("ccc_drop_lo", pa.float64()),
        ("ccc_drop_hi", pa.float64()),
        ("unchanged_share", pa.float64()),  # share of clips that moved by < 0.05
        ("max_ccc_drop", pa.float64()),  # threshold (audEERING ser-tests: 0.05)
        ("min_unchanged_share", pa.float64()),  # threshold (ser-tests: 0.90)
        ("passed_drop", pa.bool_()),
        ("passed_unchanged", pa.bool_()),
        ("passed", pa.bool_()),
        ("n_clips", pa.int64()),
        *_INTERVAL,
        ("perturbation_seed", pa.int64()),
        ("evaluated_at", _ts),
    ]
)

# Written by ser_pipeline.drift (relabel drift checks): one row per (report, dimension).
DRIFT = pa.schema(
    [
        ("report_id", pa.string()),
        ("label_run_id", pa.string()),
        ("teacher_id", pa.string()),
        ("model", pa.string()),
        ("dimension", pa.string()),
        ("new_n", pa.int64()),
        ("new_mean", pa.float64()),
        ("new_std", pa.float64()),
        ("ref_n", pa.int64()),
        ("ref_mean", pa.float64()),
        ("ref_std", pa.float64()),
        ("ks", pa.float64()),
        ("student_ccc", pa.float64()),
        ("student_mae", pa.float64()),
        ("exceeded", pa.bool_()),
        ("threshold", pa.float64()),
        ("created_at", _ts),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "audio": AUDIO,
    "human_labels": HUMAN_LABELS,
    "quarantine": QUARANTINE,
    "teacher_labels": TEACHER_LABELS,
    "splits": SPLITS,
    "predictions": PREDICTIONS,
    "metrics": METRICS,
    "drift": DRIFT,
    "robustness": ROBUSTNESS,
    "fairness": FAIRNESS,
    "comparisons": COMPARISONS,
}
