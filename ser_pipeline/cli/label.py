"""``ser label``: run a teacher over every clip it has not labeled yet."""

from __future__ import annotations

from typing import Annotated

import typer

from ser_pipeline.cli import common
from ser_pipeline.cli.common import app, emit, fail


@app.command("label")
def label_command(
    teacher: Annotated[str, typer.Option("--teacher", help="Teacher spec: hf:<id-or-folder>, "
                                         "onnx:<file> or ensemble:<spec>,<spec>.")],
    corpus: Annotated[list[str] | None, typer.Option("--corpus", help="Only this corpus "
                                                     "(repeat for several).")] = None,
    lake: common.LakeOption = None,
    dask_address: Annotated[str | None, typer.Option("--dask-address", envvar="SER_DASK_ADDRESS",
                                                     help="tcp://host:port of a Dask "
                                                     "scheduler to run shards on.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda[:N] or auto.")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto (fp32 CPU, bf16/fp16 CUDA), fp32, "
                                           "fp16, bf16, int8 (CPU dynamic int8).")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch/ORT threads per worker.")] = None,
    shard_size: Annotated[int | None, typer.Option(
        help="At most this many clips per shard (default: SER_LABEL_SHARD_SIZE, 256).")] = None,
    window_s: Annotated[float, typer.Option(help="Window length for long clips (s).")] = 10.0,
    overlap_s: Annotated[float, typer.Option(help="Window overlap (s).")] = 2.0,
    batch_size: Annotated[int, typer.Option(help="Max windows per forward pass.")] = 16,
    max_workers: Annotated[int | None, typer.Option(help="Concurrent shards.")] = None,
    engine: common.EngineOption = "prefect",
    as_json: common.JsonOption = False,
) -> None:
    """Label clips with a teacher (incremental: re-runs add nothing)."""
    from ser_pipeline.teacher import TeacherError

    common.check_engine(engine)
    settings = common.settings_for(lake, dask_address=dask_address)
    options = dict(shard_size=shard_size, window_s=window_s,
                   overlap_s=overlap_s, batch_size=batch_size, device=device,
                   precision=precision, threads=threads)
    try:
        if engine == "local":
            from ser_pipeline.label import label_lake
            from ser_pipeline.lake import Lake

            run = dict(teacher=teacher, corpora=corpus or None, max_workers=max_workers,
                       **options)
            if settings.dask_address:
                from distributed import Client

                with Client(settings.dask_address) as client:
                    summary = label_lake(Lake.open(settings=settings),
                                         executor=client.get_executor(), **run).to_dict()
            else:
                summary = label_lake(Lake.open(settings=settings), **run).to_dict()
        else:
            from flows.label import label_flow

            summary = label_flow(teacher=teacher, corpora=corpus or None, lake=settings.lake,
                                 dask_address=settings.dask_address, max_workers=max_workers,
                                 **options)
    except (TeacherError, ValueError) as error:
        fail(str(error).splitlines()[0])
    emit(summary, title="label", as_json=as_json)
