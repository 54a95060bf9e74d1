"""CLI output prints dynamic text as written: rich would read ``[x=1]`` as markup."""

from __future__ import annotations

import pytest
import typer

from ser_pipeline.cli import common
from ser_pipeline.cli.distill import _print_outcomes

BRACKETS = "CCC(onnx fp32, torch) [x=1] [arousal=0.9700] [bold]not bold[/bold]"


def test_errors_notes_and_summary_tables_keep_brackets(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(typer.Exit):
        common.fail(BRACKETS)
    assert BRACKETS in capsys.readouterr().err
    common.note(BRACKETS)
    assert BRACKETS in capsys.readouterr().err
    common.emit({"reason": BRACKETS, "nested": {"path": "/tmp/[x=1]/model.onnx"}},
                title="title [x=1]", as_json=False)
    out = capsys.readouterr().out
    assert BRACKETS in out and "/tmp/[x=1]/model.onnx" in out and "title [x=1]" in out


def test_distill_outcomes_show_fp32_only_publishes_as_written(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    withheld = "int8 parity A 0.970 < 0.98 (static-qdq-conv-u8u8)"
    _print_outcomes({
        "runs": {"wav2small": "wav2small-run", "mobilenetv3-s": "mnv3-run",
                 "mobilenetv4-s": "mnv4-run"},
        "published": {
            "wav2small": {"published": True, "version": 1, "int8_withheld": withheld,
                          "reason": "mean dev CCC vs teacher 0.900 passes the gate 0.3"},
            "mobilenetv3-s": {"published": True, "version": 2, "int8_withheld": None,
                              "reason": "passes"},
            "mobilenetv4-s": {"published": False, "reason": "error [x=1] kept"},
        }})
    out = capsys.readouterr().out
    assert f"published v1 (fp32 only: {withheld})" in out
    assert "published v2 " in out and "published v2 (" not in out
    assert "error [x=1] kept" in out


def test_the_demo_leaderboard_prints_every_figure_in_80_columns(capsys, monkeypatch, tmp_path):
    """``make demo`` prints the dev leaderboard: at 80 columns no header or cell is cut."""
    from eval_lake import FeaturePredictor, write_splits
    from lakes import add_teacher_labels, make_audio_lake

    from ser_pipeline.cli.distill import _print_leaderboard
    from ser_pipeline.db import build_db
    from ser_pipeline.evaluate import evaluate
    from ser_pipeline.reports import run_report

    monkeypatch.setenv("COLUMNS", "80")
    lake, records = make_audio_lake(str(tmp_path / "lake"), n=9, seconds=(0.5, 1.0))
    add_teacher_labels(lake, records, teacher_id="w2v2-tiny-s0-ft-demo-281d9b2c3673",
                       noise=0.05)
    write_splits(lake, records)
    for name, student in (("wav2small-20261203T190704-1f0712", "wav2small"),
                          ("mobilenetv3-s-20261203T190704-e04ed9", "mobilenetv3-s")):
        evaluate(lake, predictor=FeaturePredictor(
            name, student=student, teacher_id="w2v2-tiny-s0-ft-demo-281d9b2c3673",
            params=1_520_643, scale=0.5 if student == "wav2small" else 1.0))
    db = build_db(lake, out=tmp_path / "ser.duckdb")["db"]
    _print_leaderboard({}, db=db, lake=lake.url)
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 80 and "…" not in out
    columns, rows = run_report(db, "leaderboard", params={"split": "dev"})
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        for key in ("ccc_mean", "ccc_arousal", "ccc_dominance", "ccc_valence"):
            # with intervals beside them (evalstats), the 80-column layout prints 2 decimals
            assert any(f"{record[key]:.{places}f}".replace("-0.00", "0.00") in out
                       for places in (3, 2)), key
        assert record["model"] in out and record["student"] in out
    assert "w2v2-tiny-s0-ft-demo-281d9b2c3673" in out and "1,520,643" in out
