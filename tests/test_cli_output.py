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
