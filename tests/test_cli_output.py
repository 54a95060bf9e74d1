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


def _bare(number: float) -> str:
    """``0.92`` -> ``.92``, ``-0.05`` -> ``-.05``, as the compact layout prints bounds."""
    text = f"{number:.2f}".replace("-0.00", "0.00")
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


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
        # the mean of A, D and V has no interval of its own (it is not a bootstrapped CCC)
        assert f"{record['ccc_mean']:.2f}".replace("-0.00", "0.00") in out
        for key in ("ccc_arousal", "ccc_dominance", "ccc_valence"):
            # at 80 columns the leaderboard takes its compact layout: 2 decimals, then the
            # interval with the leading zeros dropped, e.g. ``0.94 [.92,.96]``
            value, lo, hi = (record[key], record[f"{key}_lo"], record[f"{key}_hi"])
            expected = (f"{value:.2f}".replace("-0.00", "0.00") + " ["
                        + ",".join(_bare(bound) for bound in (lo, hi)) + "]")
            assert expected in out, (key, expected)
        assert record["model"] in out and record["student"] in out
    assert "w2v2-tiny-s0-ft-demo-281d9b2c3673" in out and "1,520,643" in out
