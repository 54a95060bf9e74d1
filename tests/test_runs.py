"""Run info (run.json): the typed record, its one serialisation, and old files still reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_pipeline.lake import Lake
from ser_pipeline.runs import (
    RUN_SCHEMA_VERSION,
    Evaluation,
    RunError,
    RunInfo,
    read_run_meta,
    run_path,
    write_run_meta,
)

V1 = Path(__file__).parent / "data" / "run-v1.json"
RUN_ID = "wav2small-20250601T120000-a1b2c3"


@pytest.fixture()
def lake(tmp_path: Path) -> Lake:
    return Lake.open(str(tmp_path / "lake"))


def _plant(lake: Lake, run_id: str, record: dict | bytes) -> None:
    data = record if isinstance(record, bytes) else json.dumps(record).encode()
    lake.storage.write_bytes(run_path(run_id, "run.json"), data)


def test_a_run_json_written_before_the_schema_still_reads(lake: Lake) -> None:
    v1 = json.loads(V1.read_text())
    _plant(lake, RUN_ID, v1)
    info = read_run_meta(lake, RUN_ID)
    assert info.schema_version == RUN_SCHEMA_VERSION and info.run_id == RUN_ID
    assert (info.student, info.teacher_id, info.seed, info.params) == (
        "wav2small", "toy-teacher", 0, 10_897)
    assert info.status == "completed" and info.steps == 6 and info.best_step == 6
    assert [e.step for e in info.history] == [0, 2, 3, 4, 6]
    assert info.best_dev_ccc == v1["best_dev_ccc"]
    assert info.initial_dev_ccc == v1["initial_dev_ccc"]
    assert info.runtime.device == "cpu" and info.hyperparams["lr"] == 0.003
    assert info.created_at.isoformat() == v1["created_at"]
    assert [t.isoformat() for t in info.resumed_at] == v1["resumed_at"]
    # the mapping view callers of the untyped run.json use gives back every v1 key unchanged
    view = info.to_dict()
    assert {key: view[key] for key in v1} == v1
    assert info["best_dev_ccc"] == v1["best_dev_ccc"] and info.get("corpora") == ["toy"]
    assert "history" in info and "nonsense" not in info
    assert info.get("nan_step", "absent") == "absent"


def test_rewriting_stores_each_fact_once_and_round_trips(lake: Lake) -> None:
    _plant(lake, RUN_ID, json.loads(V1.read_text()))
    info = read_run_meta(lake, RUN_ID)
    write_run_meta(lake, "copy", info)
    stored = json.loads(lake.storage.read_bytes(run_path("copy", "run.json")))
    assert stored["schema_version"] == RUN_SCHEMA_VERSION
    # the folder names the run; best and initial dev CCC are evaluations in history
    assert not {"run_id", "best_dev_ccc", "initial_dev_ccc"} & set(stored)
    again = read_run_meta(lake, "copy")
    assert again.run_id == "copy"
    assert again.model_dump() == info.model_dump()
    assert again.best_dev_ccc == info.best_dev_ccc
    assert again.created_at == info.created_at and stored["created_at"].endswith("+00:00")


def test_best_follows_history_and_best_step() -> None:
    ccc = {"arousal": 0.1, "dominance": 0.2, "valence": 0.3, "mean": 0.2}
    better = {**ccc, "mean": 0.5}
    info = RunInfo(run_id="r", student="wav2small", history=[
        Evaluation(step=0, dev_ccc=ccc), Evaluation(step=10, train_loss=0.3, dev_ccc=better)])
    assert info.best_dev_ccc is None and info.initial_dev_ccc == ccc
    info.best_step = 10
    assert info.best_dev_ccc == better
    with pytest.raises(ValueError, match="best_step 20 has no evaluation"):
        info.best_step = 20
    with pytest.raises(KeyError, match="follow history and best_step"):
        info["best_dev_ccc"] = ccc


def test_renamed_or_mistyped_keys_fail_loudly_naming_the_file(lake: Lake) -> None:
    v1 = json.loads(V1.read_text())
    renamed = {("student_name" if k == "student" else k): v for k, v in v1.items()}
    _plant(lake, "renamed", renamed)
    with pytest.raises(RunError, match=r"renamed/run.json is not a valid run.json.*student"):
        read_run_meta(lake, "renamed")
    v2 = json.loads(RunInfo.from_record(v1, run_id="typo").to_json())
    _plant(lake, "typo", {**v2, "sttus": "completed"})
    with pytest.raises(RunError, match="sttus: Extra inputs are not permitted"):
        read_run_meta(lake, "typo")
    _plant(lake, "status", {**v1, "status": "finished"})
    with pytest.raises(RunError, match="status"):
        read_run_meta(lake, "status")
    _plant(lake, "future", {"schema_version": RUN_SCHEMA_VERSION + 1, "student": "x"})
    with pytest.raises(RunError, match="upgrade ser-pipeline"):
        read_run_meta(lake, "future")
    _plant(lake, "broken", b"{not json")
    with pytest.raises(RunError, match="broken/run.json is not valid JSON"):
        read_run_meta(lake, "broken")
    with pytest.raises(RunError, match="not found"):
        read_run_meta(lake, "missing")


def test_v1_copies_that_disagree_with_history_are_refused(lake: Lake) -> None:
    v1 = json.loads(V1.read_text())
    _plant(lake, "disagree", {**v1, "best_dev_ccc": {**v1["best_dev_ccc"], "mean": 0.99}})
    with pytest.raises(RunError, match="best_dev_ccc .* disagrees with history at step 6"):
        read_run_meta(lake, "disagree")


def test_a_partial_v1_record_keeps_its_best_dev_ccc_in_history(lake: Lake) -> None:
    best = {"arousal": 0.71, "dominance": 0.62, "valence": 0.43, "mean": 0.587}
    write_run_meta(lake, "partial", {"student": "wav2small", "best_step": 100,
                                     "best_dev_ccc": best, "corpora": ["toy"]})
    info = read_run_meta(lake, "partial")
    assert info.best_dev_ccc == best and [e.step for e in info.history] == [100]
    assert info.teacher_id is None and info.initial_dev_ccc is None
    with pytest.raises(RunError, match="best_dev_ccc is recorded without best_step"):
        write_run_meta(lake, "no-step", {"student": "wav2small", "best_dev_ccc": best})
    assert not lake.storage.exists(run_path("no-step", "run.json"))
