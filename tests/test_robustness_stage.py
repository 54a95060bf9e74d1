"""The robustness stage end to end: a real exported wav2small (ONNX Runtime) on perturbed
dev clips of a real lake, the robustness table, its report and ``ser robustness``."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lakes import add_teacher_labels
from onnx_runs import TEACHER, exported  # noqa: F401
from typer.testing import CliRunner

from ser_pipeline import metrics
from ser_pipeline.audio import decode_flac
from ser_pipeline.cli import app
from ser_pipeline.db import build_db, connect
from ser_pipeline.evaluate import OnnxPredictor, evaluate
from ser_pipeline.lake import Lake
from ser_pipeline.onnx_model import OnnxModel
from ser_pipeline.perturb import PERTURBATIONS, PerturbationError, perturb
from ser_pipeline.reports import run_report
from ser_pipeline.robustness import perturbation_seed
from ser_pipeline.robustness_stage import (
    RobustnessError,
    run_robustness,
    subset,
    write_robustness,
)
from ser_pipeline.schemas import LABELS

B = 200


class Counting:
    """A real predictor that counts the windows it is asked about."""

    def __init__(self, inner: OnnxPredictor) -> None:
        self.inner, self.windows = inner, 0
        self.identity, self.min_samples = inner.identity, inner.min_samples
        self.batch_size = inner.batch_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.windows += len(batch)
        return self.inner.predict(batch)


@pytest.fixture()
def lake(exported, tmp_path: Path) -> Lake:  # noqa: F811
    """A copy of the exported run's lake, with teacher labels from the run's teacher."""
    shutil.copytree(exported["lake"].url, tmp_path / "lake")
    lake = Lake.open(str(tmp_path / "lake"))
    add_teacher_labels(lake, exported["records"], teacher_id=TEACHER, noise=0.05)
    return lake


def _dev(lake: Lake) -> tuple[list[str], list[np.ndarray], np.ndarray, set[str]]:
    ids = sorted(lake.ids("splits", filter=None) & {
        r["audio_id"] for r in lake.read("splits").to_pylist() if r["split"] == "dev"})
    audio = {r["audio_id"]: r for r in lake.audio_for(ids).to_pylist()}
    labels = {r["audio_id"]: [r[d] for d in LABELS]
              for r in lake.read("teacher_labels").to_pylist()}
    return (ids, [decode_flac(audio[i]["audio"]["bytes"]) for i in ids],
            np.array([labels[i] for i in ids]), {audio[i]["speaker"] for i in ids})


def test_every_perturbation_is_recorded_and_equals_a_direct_computation(
        lake: Lake, exported) -> None:  # noqa: F811
    path = exported["out_dir"] / "model.onnx"
    result = run_robustness(lake, model=str(path), n_resamples=B)
    rows = lake.read("robustness").to_pylist()
    assert len(rows) == len(PERTURBATIONS) * 3 == len(result.rows())
    assert [r["perturbation"] for r in rows[::3]] == list(PERTURBATIONS)
    ids, signals, reference, speakers = _dev(lake)
    for row in rows:
        assert (row["max_ccc_drop"], row["min_unchanged_share"]) == (0.05, 0.90)
        assert row["passed"] == (row["passed_drop"] and row["passed_unchanged"])
        assert (row["model_file"], row["teacher_id"], row["reference"], row["corpus"],
                row["split"], row["run_id"]) == ("model.onnx", TEACHER, "teacher", "toy",
                                                 "dev", exported["run_id"])
        assert (row["ci_unit"], row["ci_units"], row["n_clips"]) == ("speaker",
                                                                      len(speakers), len(ids))
    # the figures, recomputed here with the runner, the perturbations and audmetric's CCC
    model = OnnxModel(path)
    clean = model.predict(signals)
    for name in ("noise_snr10db", "telephone"):
        noisy = model.predict([perturb(s, name, seed=perturbation_seed(0, name, i))
                               for i, s in enumerate(signals)])
        for d, dimension in enumerate(LABELS):
            row = next(r for r in rows if (r["perturbation"], r["dimension"]) == (name,
                                                                                 dimension))
            expected_clean = metrics.ccc(clean[:, d], reference[:, d])
            expected_noisy = metrics.ccc(noisy[:, d], reference[:, d])
            assert row["clean_ccc"] == pytest.approx(expected_clean, abs=1e-9)
            assert row["perturbed_ccc"] == pytest.approx(expected_noisy, abs=1e-9)
            assert row["ccc_drop"] == pytest.approx(expected_clean - expected_noisy, abs=1e-9)
            assert row["ccc_drop_lo"] <= row["ccc_drop"] <= row["ccc_drop_hi"]
            assert row["unchanged_share"] == pytest.approx(
                np.mean(np.abs(noisy[:, d] - clean[:, d]) < 0.05))
            assert row["passed_drop"] == (row["ccc_drop"] <= 0.05)


def test_rerun_adds_no_rows_and_reuses_evaluate_predictions(lake: Lake, exported) -> None:  # noqa: F811
    path = exported["out_dir"] / "model.onnx"
    evaluate(lake, model=str(path), splits=("dev",))  # stores the clean predictions
    first = Counting(OnnxPredictor(path))
    result = run_robustness(lake, predictor=first, n_resamples=B,
                            perturbations=["gain_minus20db", "room_rt60_500ms"])
    n = result.records[0].n_clips
    assert first.windows == 2 * n  # the clean pass came from predictions/
    assert not result.records[0].reused and result.to_dict()["rows_written"] == 6
    parts = lake.parts("robustness")
    again = Counting(OnnxPredictor(path))
    rerun = run_robustness(lake, predictor=again, n_resamples=B,
                           perturbations=["gain_minus20db", "room_rt60_500ms"])
    assert again.windows == 0 and rerun.records[0].reused
    assert lake.parts("robustness") == parts and rerun.to_dict()["rows_written"] == 0
    assert sorted(map(str, rerun.rows()), key=str) == sorted(
        map(str, lake.read("robustness").to_pylist()), key=str)
    # other options are another suite run: new rows beside the old ones
    run_robustness(lake, predictor=again, n_resamples=B, seed=1,
                   perturbations=["gain_minus20db"])
    assert len(lake.parts("robustness")) == 2


def test_a_model_renamed_at_publish_writes_the_rows_a_later_run_finds(
        lake: Lake, exported) -> None:  # noqa: F811
    """Publish computes before the version exists (write=False), then writes under
    name@version; the same suite on the published model finds those rows."""
    predictor = OnnxPredictor(exported["out_dir"] / "model.int8.onnx")
    options = {"n_resamples": B, "perturbations": ["telephone"], "max_clips": 6}
    computed = run_robustness(lake, predictor=predictor, write=False, **options)
    assert lake.parts("robustness") == []
    written = write_robustness(lake, computed, model="toy-w2s@1")
    assert [r.written for r in written.records] == [True]
    assert {r["model"] for r in lake.read("robustness").to_pylist()} == {"toy-w2s@1"}
    predictor.identity = replace(predictor.identity, model="toy-w2s@1")
    later = run_robustness(lake, predictor=predictor, **options)
    assert later.records[0].reused
    assert later.records[0].robustness_id == written.records[0].robustness_id
    assert later.records[0].n_clips == 6 and len(lake.parts("robustness")) == 1


def test_human_reference_subset_and_bad_requests(lake: Lake, exported) -> None:  # noqa: F811
    path = str(exported["out_dir"] / "model.onnx")
    human = run_robustness(lake, model=path, reference="human", max_clips=5,
                           perturbations=["gain_plus6db_clipped"], n_resamples=B)
    assert {(r["reference"], r["teacher_id"]) for r in human.rows()} == {("human", TEACHER)}
    assert human.records[0].n_clips == 5
    assert any("5 of 12 clips" in n for n in human.notices)
    chosen_12 = subset([f"c{i}" for i in range(12)], max_clips=5, seed=0)
    chosen_13 = subset([f"c{i}" for i in range(13)], max_clips=5, seed=0)
    assert len(chosen_12) == 5 and len(set(chosen_12) - set(chosen_13)) <= 1  # by hashing
    assert subset([f"c{i}" for i in range(12)], max_clips=5, seed=1) != chosen_12
    with pytest.raises(RobustnessError, match="unknown reference 'mood'"):
        run_robustness(lake, model=path, reference="mood")
    with pytest.raises(PerturbationError, match="unknown perturbation.*'echo'"):
        run_robustness(lake, model=path, perturbations=["echo"])
    add_teacher_labels(lake, exported["records"], teacher_id="other-teacher", seed=3)
    anonymous = OnnxPredictor(path)
    anonymous.identity = replace(anonymous.identity, teacher_id=None)
    with pytest.raises(RobustnessError, match="several teachers.*--teacher"):
        run_robustness(lake, predictor=anonymous, perturbations=["telephone"])
    chosen = run_robustness(lake, predictor=anonymous, teacher_id="other-teacher",
                            perturbations=["telephone"], n_resamples=B, max_clips=4)
    assert {r["teacher_id"] for r in chosen.rows()} == {"other-teacher"}


def test_table_report_and_cli_at_80_columns(lake: Lake, exported, tmp_path: Path,  # noqa: F811
                                            monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    path = str(exported["out_dir"] / "model.onnx")
    runner = CliRunner()
    result = runner.invoke(app, ["robustness", "--model", path, "--lake", lake.url,
                                 "--resamples", "100", "--max-clips", "8"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.stdout
    for label in ("noise 20 dB", "noise 5 dB", "telephone", "gain -20 dB", "gain +6 dB clip",
                  "room RT60 0.5 s", "tilt -3 dB/oct", "ser-tests", "clean CCC"):
        assert label in result.stdout, label
    rows = lake.read("robustness").to_pylist()
    for row in rows:  # every drop is printed, to 2 decimals (no minus on a zero)
        assert f"{row['ccc_drop']:.2f}".replace("-0.00", "0.00") in result.stdout
    assert "24 rows written" in result.stdout
    again = runner.invoke(app, ["robustness", "--model", path, "--lake", lake.url,
                                "--resamples", "100", "--max-clips", "8", "--json"])
    summary = json.loads(again.stdout)
    assert summary["rows_written"] == 0 and summary["suites"][0]["reused"]
    assert sorted(summary["suites"][0]["passed"] + summary["suites"][0]["failed"]) == sorted(
        PERTURBATIONS)
    bad = runner.invoke(app, ["robustness", "--model", path, "--lake", lake.url,
                              "--perturbation", "echo"])
    assert bad.exit_code == 2 and "unknown perturbation" in bad.output
    both = runner.invoke(app, ["robustness", "--lake", lake.url])
    assert both.exit_code == 2 and "exactly one of --run" in both.output
    # the analyst database: table, latest view and the named report
    db = build_db(lake, out=tmp_path / "ser.duckdb")["db"]
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM robustness").fetchall() == [(len(rows),)]
        assert con.execute("SELECT count(*) FROM latest_robustness").fetchall() == [(24,)]
    columns, report = run_report(db, "robustness", params={"reference": "teacher"})
    assert len(report) == 24 and columns[:3] == ["model", "student", "corpus"]
    assert [r[columns.index("perturbation")] for r in report[::3]] == list(PERTURBATIONS)
    shown = runner.invoke(app, ["report", "robustness", "--db", str(db)])
    assert shown.exit_code == 0 and "…" not in shown.stdout
    assert max(map(len, shown.stdout.splitlines())) <= 80


def test_publish_with_robustness_fills_manifest_card_and_table(
        lake: Lake, exported, tmp_path: Path) -> None:  # noqa: F811
    from ser_pipeline.config import Settings
    from ser_pipeline.model_card import CARD_FILE
    from ser_pipeline.registry import Registry, read_manifest
    from ser_pipeline.robustness_stage import publish_with_robustness

    url = str(tmp_path / "registry")
    registry = Registry(url, settings=Settings(registry=url, lake=lake.url,
                                               db=str(tmp_path / "ser.duckdb")))
    manifest = publish_with_robustness(registry, exported["result"], lake, name="rob-w2s",
                                       n_resamples=B, max_clips=8)
    (section,) = manifest.robustness
    assert section.file == manifest.serving.default_file  # the served file was tested
    assert not any("robustness was measured" in w for w in manifest.warnings)
    assert (section.corpus, section.split, section.reference, section.teacher_id,
            section.n_clips) == ("toy", "dev", "teacher", TEACHER, 8)
    assert [c.perturbation for c in section.perturbations] == list(PERTURBATIONS)
    assert (section.max_ccc_drop, section.min_unchanged_share) == (0.05, 0.90)
    folder = tmp_path / "registry" / "models" / "rob-w2s" / "1"
    stored = read_manifest((folder / "manifest.json").read_text())
    assert stored.robustness == manifest.robustness  # typed, through the JSON
    rows = lake.read("robustness").to_pylist()
    assert len(rows) == 24 and {r["model"] for r in rows} == {"rob-w2s@1"}
    for check in section.perturbations:  # manifest and table say the same
        for figure in check.dimensions:
            row = next(r for r in rows if (r["perturbation"], r["dimension"])
                       == (check.perturbation, figure.dimension))
            assert (figure.ccc_drop, figure.unchanged_share, figure.passed) == (
                row["ccc_drop"], row["unchanged_share"], row["passed"])
    card = (folder / CARD_FILE).read_text()
    robustness = card[card.index("## Robustness"):card.index("## Which file to run")]
    assert "ser-tests" in robustness and "rob-w2s@1 · toy · dev · vs teacher · 8 clips" in (
        robustness)
    table = [line for line in robustness.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(PERTURBATIONS)  # header + one row per perturbation
    assert all(line.count("[") == 3 for line in table[1:])  # drops with their intervals
    # the same suite on the published model finds the rows: nothing recomputed or added
    later = run_robustness(lake, model="registry://rob-w2s@1", n_resamples=B, max_clips=8,
                           settings=registry.settings)
    assert later.records[0].reused and len(lake.parts("robustness")) == 1
