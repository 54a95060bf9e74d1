"""``ser teacher ...``: create, fine-tune, export and inspect teachers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ser_pipeline.cli.common import JsonOption, LakeOption, app, emit, fail, settings_for

teacher_app = typer.Typer(help="Teachers: init random ones, fine-tune, export to ONNX, info.",
                          no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")

SpecOption = Annotated[str, typer.Option("--teacher", help="Teacher spec: hf:<id-or-folder>, "
                                         "onnx:<file> or ensemble:<spec>,<spec>.")]


@teacher_app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Folder to write the model to.")],
    arch: Annotated[str, typer.Option(help="Backbone: wav2vec2 or wavlm.")] = "wav2vec2",
    size: Annotated[str, typer.Option(help="tiny (tests, demo) or large (audEERING shape).")]
    = "tiny",
    seed: Annotated[int, typer.Option(help="Weight seed (same seed, same weights).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Save a correctly shaped A/D/V teacher with RANDOM weights (for offline use)."""
    from ser_pipeline.teacher import TeacherError, init_teacher, load_teacher

    try:
        folder = init_teacher(path, arch=arch, size=size, seed=seed)
        teacher = load_teacher(f"hf:{folder}")
    except TeacherError as error:
        fail(str(error))
    emit({"spec": f"hf:{folder}", **teacher.info(),
          "warning": "random weights: labels from this teacher carry no emotion information"},
         title="teacher init", as_json=as_json)


@teacher_app.command("finetune")
def finetune_command(
    teacher: SpecOption,
    corpus: Annotated[list[str], typer.Option("--corpus", help="Corpus with human labels "
                                              "(repeat for several).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the new teacher.")],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 400,
    epochs: Annotated[int | None, typer.Option(help="Epochs instead of --steps.")] = None,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 3e-3,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 32,
    train_top_layers: Annotated[int, typer.Option(help="Also train this many top "
                                                  "transformer layers.")] = 0,
    train_all: Annotated[bool, typer.Option(
        "--train-all", help="Full fine-tuning: every weight, the conv encoder too.")] = False,
    max_clip_s: Annotated[float, typer.Option(help="Centre-crop clips to this length.")] = 8.0,
    views: Annotated[int, typer.Option(help="Views per training clip: the clip, then "
                                       "copies with random sign, shift and cut.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for split, batches and dropout.")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the teacher's head (optionally top layers, or all of it) on human labels."""
    from ser_pipeline.lake import Lake
    from ser_pipeline.teacher import TeacherError, finetune_teacher

    settings = settings_for(lake)
    try:
        summary = finetune_teacher(
            Lake.open(settings=settings), teacher=teacher, corpus=corpus, out=out,
            steps=steps, epochs=epochs, lr=lr, batch_size=batch_size,
            train_top_layers=train_top_layers, train_all=train_all, max_clip_s=max_clip_s,
            views=views, seed=seed, threads=threads)
    except TeacherError as error:
        fail(str(error))
    emit(summary, title="teacher finetune", as_json=as_json)


@teacher_app.command("export")
def export_command(
    teacher: SpecOption,
    out: Annotated[Path, typer.Option("--out", help="Output .onnx file.")],
    int8: Annotated[bool, typer.Option("--int8", help="Quantise MatMul weights to int8 (u8, "
                                       "per channel, dynamic): fastest on CPU, exact on "
                                       "every CPU kind. Keeps <out>.fp32.onnx beside it.")
                    ] = False,
    lake: Annotated[str | None, typer.Option(
        "--lake", help="Measure int8 fidelity on up to 32 clips of this lake (default: "
        "built-in speech-like signals).")] = None,
    check: Annotated[bool, typer.Option(help="Compare ONNX Runtime with torch on random "
                                        "signals.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Export an hf: teacher to one ONNX file (signal -> logits) for the onnx: spec."""
    import numpy as np

    from ser_pipeline.teacher import TeacherError, export_teacher_onnx, load_teacher

    try:
        fidelity_signals = None
        if int8 and lake:
            from ser_pipeline.export import lake_clips
            from ser_pipeline.lake import Lake

            _, fidelity_signals = lake_clips(Lake.open(settings=settings_for(lake)),
                                             split=None, limit=32)
        path = export_teacher_onnx(teacher, out, int8=int8,
                                   fidelity_signals=fidelity_signals or None)
        summary = {"onnx": str(path), "spec": f"onnx:{path}", "bytes": path.stat().st_size}
        exported = load_teacher(f"onnx:{path}")
        summary.update(teacher_id=exported.teacher_id)
        if int8:
            info = exported.info()
            summary.update(int8_ccc_vs_fp32=info["int8_ccc_vs_fp32"],
                           labels_with=exported.precision,
                           int8_fallback=info["int8_fallback"])
        if check:
            rng = np.random.default_rng(0)
            signals = [(0.1 * rng.standard_normal(n)).astype(np.float32)
                       for n in (16_000, 24_000, 40_000)]
            reference = load_teacher(teacher).predict(signals)
            diff = float(np.abs(exported.predict(signals) - reference).max())
            summary.update(max_abs_diff_vs_torch=diff)
            if diff > 1e-4 and exported.precision != "int8":  # int8 is CCC-checked above
                fail(f"exported model differs from torch by {diff:.2e} (> 1e-4); "
                     "report this with the model folder")
    except TeacherError as error:
        fail(str(error))
    emit(summary, title="teacher export", as_json=as_json)


@teacher_app.command("info")
def info_command(
    spec: Annotated[str, typer.Argument(help="Teacher spec (hf:, onnx:, ensemble:).")],
    as_json: JsonOption = False,
) -> None:
    """Show a teacher's id, weights hash, licence and whether it is random."""
    from ser_pipeline.teacher import TeacherError, load_teacher

    try:
        teacher = load_teacher(spec)
    except TeacherError as error:
        fail(str(error))
    summary = {"spec": spec, **teacher.info()}
    model = getattr(teacher, "model", None)
    if model is not None:
        summary["parameters"] = sum(p.numel() for p in model.parameters())
        provenance = getattr(model.config, "ser_provenance", None)
        if provenance:
            summary["finetuned_from"] = provenance.get("base_teacher_id")
            summary["finetune_corpus"] = provenance.get("corpus")
            summary["finetune_ccc_after"] = (provenance.get("ccc_after") or {}).get("mean")
    emit(summary, title="teacher", as_json=as_json)
