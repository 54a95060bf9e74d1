"""``ser publish`` and ``ser models list|show``: the model registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ser_pipeline.cli import common
from ser_pipeline.cli.common import add_plain_row, app, console, emit, fail, note

if TYPE_CHECKING:
    from ser_pipeline.registry import Manifest

models_app = typer.Typer(help="Browse the model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command("publish")
def publish_command(
    run: Annotated[str, typer.Option("--run", help="Training run id to export and publish.")],
    name: Annotated[str, typer.Option("--name", help="Registry model name.")],
    version: Annotated[int | None, typer.Option(
        "--version", min=1, help="Explicit version (default: the next free number).")] = None,
    gate_corpus: Annotated[list[str] | None, typer.Option(
        "--gate-corpus", help="Corpus the no-regression gate compares on (repeat; default: "
        "the run's training corpora).")] = None,
    gate_split: Annotated[str, typer.Option(
        "--gate-split", help="Split the gate compares on.")] = "dev",
    allow_regression: Annotated[bool, typer.Option(
        "--allow-regression", help="Move latest even when the candidate is significantly "
        "worse than the current latest (the manifest records it).")] = False,
    robustness: Annotated[bool, typer.Option(
        "--robustness", help="Run the robustness suite on the file to be served (the run's "
        "dev clips vs its teacher) first: results in the manifest, the model card and the "
        "lake's robustness table.")] = False,
    lake: common.LakeOption = None,
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
    engine: common.EngineOption = "prefect",
) -> None:
    """Export RUN (parity-checked) and publish it as NAME's next version.

    latest moves to it unless the no-regression gate finds it significantly worse than
    the current latest on the gate corpus (then it is kept as a version latest does not
    point at: promote it later with 'ser models promote NAME@VERSION').
    """
    from ser_pipeline.export import ExportError
    from ser_pipeline.registry import RegistryError, publish_run
    from ser_pipeline.runs import RunError

    common.check_engine(engine)
    settings = common.settings_for(lake=lake, registry=registry)
    options = {"gate_corpora": gate_corpus or None, "gate_split": gate_split,
               "allow_regression": allow_regression, "robustness": robustness}
    try:
        if engine == "prefect":
            from flows.publish import publish_flow

            summary = publish_flow(run_id=run, name=name, lake=settings.lake,
                                   registry=settings.registry, version=version, **options)
        else:
            summary = publish_run(settings.lake, run, name=name, registry=settings.registry,
                                  version=version, settings=settings, **options)
    except (RegistryError, ExportError, RunError, ValueError) as error:
        fail(f"{error} (registry unchanged)")
    if not as_json and not summary["latest"]:
        note(f"{summary['uri']} is published but latest did not move: {summary['gate']}")
    emit(summary, title=f"published {summary['uri']}", as_json=as_json)


@models_app.command("promote")
def promote_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to point latest at.")],
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Point NAME's latest at VERSION: a version the gate held back, or a rollback."""
    from ser_pipeline.registry import Registry, RegistryError, parse_ref

    try:
        name, version = parse_ref(ref)
        if version is None:
            raise ValueError(f"give the version to promote: {name}@VERSION")
        target = Registry(registry, settings=common.settings_for(registry=registry))
        before = target.latest_version(name)
        manifest = target.promote(name, version)
    except (RegistryError, ValueError) as error:
        fail(str(error))
    emit({"uri": manifest.uri, "latest_was": f"{name}@{before}",
          "gate_at_publish": manifest.gate.reason if manifest.gate else None},
         title=f"latest of {name} is now version {version}", as_json=as_json)


@models_app.command("list")
def list_command(
    name: Annotated[str | None, typer.Option("--name", help="Only this model.")] = None,
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Every complete version in the registry (interrupted publishes are not shown)."""
    from ser_pipeline.registry import Registry, RegistryError

    try:
        rows = Registry(registry, settings=common.settings_for(registry=registry)).list_models(name)
    except (RegistryError, ValueError) as error:
        fail(str(error))
    if as_json:
        emit({"models": rows}, title="models", as_json=True)
        return
    table = Table(title="models", header_style="bold")
    for column in ("name", "version", "latest", "gate", "student", "int8 KB", "serves",
                   "dev CCC", "license", "published"):
        table.add_column(column)
    for row in rows:
        ccc = row["dev_ccc_mean"]
        add_plain_row(table, row["name"], str(row["version"]), "*" if row["latest"] else "",
                      {True: "passed", False: "held back", None: "-"}[row["gate_passed"]],
                      str(row["student"]),
                      f"{row['int8_bytes'] / 1000:.1f}" if row["int8_bytes"] else "withheld",
                      "int8" if row["serves"] == "model.int8.onnx" else "fp32",
                      f"{ccc:.3f}" if isinstance(ccc, float) else "-", str(row["license"]),
                      str(row["published_at"])[:19])
    console.print(table)


@models_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default latest).")],
    registry: common.RegistryOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """A version's manifest: files and hashes, CCC, provenance, licence."""
    from ser_pipeline.registry import Registry, RegistryError, parse_ref

    try:
        name, version = parse_ref(ref)
        manifest = Registry(registry, settings=common.settings_for(registry=registry)).show(
            name, version)
    except (RegistryError, ValueError) as error:
        fail(str(error))
    if as_json:
        emit(manifest.model_dump(mode="json", by_alias=True), title=ref, as_json=True)
        return
    emit(show_brief(manifest), title=f"{manifest.name}@{manifest.version}", as_json=False)


def show_brief(manifest: Manifest) -> dict[str, Any]:
    """What ``ser models show`` prints of a manifest (without ``--json``)."""
    provenance = manifest.provenance
    brief: dict[str, Any] = {
        "uri": manifest.uri, "published_at": manifest.published_at,
        "student": provenance.student, "run_id": provenance.run_id,
        "teacher_id": provenance.teacher_id, "lake_snapshot": provenance.lake_snapshot,
        "git_sha": provenance.git_sha,
        "serves": f"{manifest.serving.default_file}: {manifest.serving.reason}",
        "files": {n: f"{i.bytes} B sha256 {i.sha256[:16]}..."
                  for n, i in manifest.files.items()},
        "ccc": {f"{c.reference}/{c.split}/{c.corpus}":
                f"A {c.arousal} D {c.dominance} V {c.valence}" for c in manifest.ccc},
    }
    int8, recipe = manifest.int8, manifest.int8.recipe
    if int8.withheld:
        brief["int8"] = f"withheld: {int8.reason} (fp32 is served)"
    elif recipe is not None:
        brief["int8"] = (
            f"{recipe.name}: activations {recipe.activation_type}, weights "
            f"{recipe.weight_type}, reduce_range {recipe.reduce_range}, "
            f"per-channel {recipe.per_channel}, ops {', '.join(recipe.op_types)}"
            f", {len(recipe.nodes_excluded)} nodes kept fp32")
    serving = manifest.serving
    if serving.fp32_ms is not None and serving.int8_ms is not None:
        brief["latency"] = (f"fp32 {serving.fp32_ms:.2f} ms, int8 {serving.int8_ms:.2f} ms "
                            f"per {serving.clip_s:g} s clip, {serving.threads} thread(s)")
    machine = manifest.machine
    if machine is not None:
        flags = ", ".join(flag for flag, present in machine.flags.items() if present)
        brief["parity_measured_on"] = f"{machine.kind} ({machine.model}; {flags})"
    brief["license"] = manifest.license.id
    if manifest.gate is not None:
        brief["gate"] = manifest.gate.reason
    if manifest.warnings:
        brief["warnings"] = manifest.warnings
    return brief
