"""Distillation labels at scale: run a teacher over every clip it has not labeled yet.

How it stays correct under crashes and concurrency, module by module:

* :mod:`.plan`: **selection** is an anti-join (clips minus those this teacher labeled or
  quarantined), so re-runs add nothing; **shards** are ids of one audio part file, sorted
  by duration, never arrays.
* :mod:`.commit`: **commits** are atomic part files with deterministic keys, written
  under a per-teacher lease lock after dropping ids labeled meanwhile, so concurrent
  labelers never write a duplicate row and a crash loses at most the shards in flight.
* :mod:`.shard`: one shard end to end; **the model loads once per worker process**, bad
  clips become quarantine rows and the shard goes on.
* :mod:`.memory`: **memory stays flat**: after each shard, heap pages glibc keeps free are
  handed back to the OS.
* :mod:`.run`: the stage (:func:`label_lake`) and the pieces the Prefect flow shares with
  it (:func:`start_labeling`, :meth:`LabelRun.summarize`).
"""

from ser_pipeline.label.commit import (
    LOCK_STALE_S,
    LOCK_WAIT_S,
    LabeledIndex,
    commit_labels,
    commit_lock,
    commit_lock_path,
    labeled_index,
)
from ser_pipeline.label.memory import TRIM_FREE_BYTES, large_blocks_mapped, release_free_memory
from ser_pipeline.label.plan import (
    STAGE,
    PlanCounts,
    Shard,
    labeled_ids,
    plan_shards,
    shard_length,
)
from ser_pipeline.label.run import (
    LabelRun,
    LabelSummary,
    label_lake,
    new_label_run_id,
    start_labeling,
)
from ser_pipeline.label.shard import LabelOptions, ShardResult, label_shard

__all__ = [
    "LOCK_STALE_S", "LOCK_WAIT_S", "STAGE", "TRIM_FREE_BYTES", "LabelOptions", "LabelRun",
    "LabelSummary", "LabeledIndex", "PlanCounts", "Shard", "ShardResult", "commit_labels",
    "commit_lock", "commit_lock_path", "label_lake", "label_shard", "labeled_ids",
    "labeled_index", "large_blocks_mapped", "new_label_run_id", "plan_shards",
    "release_free_memory", "shard_length",
    "start_labeling",
]
