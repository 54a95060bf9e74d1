"""The end-to-end distill flow on a real Dask LocalCluster, and its incremental re-run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf
from lakes import synthetic_labels, synthetic_params, tone

from ser_pipeline.distill import DistillError, preflight, quality_gate
from ser_pipeline.lake import Lake
from ser_pipeline.registry import Registry


def _corpus(root: Path, n: int = 24) -> Path:
    root.mkdir(parents=True)
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "arousal", "dominance", "valence", "speaker"])
        for index in range(n):
            params = synthetic_params(index, seed=7)
            sf.write(root / f"clip{index:03d}.wav",
                     tone(**params, seconds=1.0 + (index % 4) * 0.3, seed=index), 16000)
            writer.writerow([f"clip{index:03d}.wav", *synthetic_labels(params),
                             f"spk{index % 6}"])
    return root


def test_preflight_fails_fast_on_missing_source_and_teacher(tmp_path):
    with pytest.raises(DistillError, match="does not exist"):
        preflight(sources=[str(tmp_path / "nope")], teacher=None)
    from ser_pipeline.teacher import TeacherError

    with pytest.raises(TeacherError):
        preflight(sources=[], teacher=f"hf:{tmp_path / 'no-model'}")


def test_demo_teacher_is_reused_only_when_built_by_the_same_recipe(tmp_path):
    from dataclasses import replace

    from lakes import make_audio_lake

    from ser_pipeline.demo.teacher import TeacherRecipe
    from ser_pipeline.distill import prepare_demo_teacher
    from ser_pipeline.teacher import load_teacher

    lake, _ = make_audio_lake(str(tmp_path / "lake"), n=16, seconds=(0.5, 1.0))
    small = TeacherRecipe(steps=3, views=2, batch_size=4, max_clip_s=1.0)
    options = dict(workdir=tmp_path / "demo", corpus="toy")
    spec, built = prepare_demo_teacher(lake, recipe=small, **options)
    assert built is not None and built["views"] == 2 and built["train_all"] is True
    first = load_teacher(spec).teacher_id
    assert prepare_demo_teacher(lake, recipe=small, **options) == (spec, None)
    # an older recipe's teacher (other views) is built again, under a new teacher id
    again, rebuilt = prepare_demo_teacher(lake, recipe=replace(small, views=3), **options)
    assert again == spec and rebuilt is not None and rebuilt["views"] == 3
    assert load_teacher(spec).teacher_id != first


def test_the_shipped_demo_teacher_is_installed_without_fine_tuning(tmp_path):
    from ser_pipeline.demo.teacher import RECIPE, SHIPPED, provenance_of
    from ser_pipeline.distill import prepare_demo_teacher
    from ser_pipeline.hashing import sha256_file
    from ser_pipeline.teacher import load_teacher

    empty = Lake.open(str(tmp_path / "lake"))  # nothing to fine-tune on: it must not try
    spec, built = prepare_demo_teacher(empty, workdir=tmp_path / "demo")
    assert built is None and spec == f"hf:{tmp_path / 'demo' / 'teacher'}"
    teacher = load_teacher(spec)
    assert not teacher.is_random and "ft-demo" in teacher.teacher_id
    assert RECIPE.matches(provenance_of(SHIPPED), corpus="demo")
    assert sha256_file(tmp_path / "demo" / "teacher" / "model.safetensors") == sha256_file(
        SHIPPED / "model.safetensors")
    # the shipped teacher judges: its recorded held-out CCC against the human labels
    assert provenance_of(SHIPPED)["ccc_after"]["mean"] > 0.5


def test_quality_gate_uses_the_weakest_dev_result():
    rows = [{"reference": "teacher", "split": "dev", "ccc_mean": 0.8},
            {"reference": "human", "split": "dev", "ccc_mean": 0.1},
            {"reference": "teacher", "split": "test", "ccc_mean": 0.1}]
    assert quality_gate(rows, min_ccc=0.7)[0]
    assert not quality_gate(rows, min_ccc=0.9)[0]
    assert not quality_gate([], min_ccc=0.0)[0]
    # only the corpora the student learned from count; the weakest is named
    rows = [{"corpus": "pool", "reference": "teacher", "split": "dev", "ccc_mean": 0.8},
            {"corpus": "human", "reference": "teacher", "split": "dev", "ccc_mean": 0.4}]
    assert not quality_gate(rows, min_ccc=0.7)[0]
    passed, reason = quality_gate(rows, min_ccc=0.7, corpora=["pool"])
    assert passed and "0.800 (pool) passes" in reason


@pytest.mark.slow
def test_distill_on_dask_then_rerun_does_no_repeated_work(tmp_path, prefect_harness):
    from distributed import LocalCluster

    from flows.distill import distill_flow, stage_counts
    from ser_pipeline.teacher import init_teacher

    corpus = _corpus(tmp_path / "corpus")
    teacher = f"hf:{init_teacher(tmp_path / 'teacher', size='tiny', seed=1)}"
    options = dict(sources=[str(corpus)], corpus="toy", recipe="csv", teacher=teacher,
                   students=["wav2small"], max_steps=30, crop_s=1.0, min_ccc=-1.0,
                   publish_name="toy", lake=str(tmp_path / "lake"),
                   registry=str(tmp_path / "registry"), db=str(tmp_path / "ser.duckdb"),
                   report_html=str(tmp_path / "report.html"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        first = distill_flow(**options, dask_address=cluster.scheduler_address)
    counts = stage_counts(first)
    assert counts["ingested"] == 24 and counts["labeled"] == 24 and counts["trained"] == 1
    assert counts["metrics_rows_written"] > 0
    outcome = first["published"]["wav2small"]
    assert outcome["published"], outcome
    assert Registry(str(tmp_path / "registry")).show("toy-wav2small").version == 1
    assert Path(first["report_html"]).read_text().count("data:image/png;base64,") >= 1
    assert (tmp_path / "ser.duckdb").exists()
    # the published student's robustness: in its manifest, card, the lake and the report
    from ser_pipeline.perturb import PERTURBATIONS

    manifest = Registry(str(tmp_path / "registry")).show("toy-wav2small")
    assert [c.perturbation for c in manifest.robustness[0].perturbations] == list(
        PERTURBATIONS)
    assert manifest.robustness[0].file == manifest.serving.default_file
    robustness = Lake.open(str(tmp_path / "lake")).read("robustness").to_pylist()
    assert {r["model"] for r in robustness} == {"toy-wav2small@1"}
    assert len(robustness) == 3 * len(PERTURBATIONS)
    page = Path(first["report_html"]).read_text()
    assert "toy-wav2small@1 · toy · dev · vs teacher" in page and "room RT60 0.5 s" in page

    second = distill_flow(**options)  # default thread-pool runner
    assert stage_counts(second) == {"ingested": 0, "labeled": 0, "trained": 0,
                                    "metrics_rows_written": 0, "published": 0}
    assert second["runs"] == first["runs"]
    assert second["published"]["wav2small"]["reason"] == "already published"
    assert len(Lake.open(str(tmp_path / "lake")).parts("robustness")) == 1
    lake = Lake.open(str(tmp_path / "lake"))
    labels = lake.read("teacher_labels", columns=["audio_id"]).column("audio_id").to_pylist()
    assert len(labels) == len(set(labels)) == 24
