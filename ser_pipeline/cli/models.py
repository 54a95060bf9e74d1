"""``ser publish`` and ``ser models list|show``: the model registry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ser_pipeline.cli.common import (
    EngineOption,
    JsonOption,
    LakeOption,
    RegistryOption,
    add_plain_row,
    app,
    check_engine,
    console,
    emit,
    fail,
    settings_for,
)

models_app = typer.Typer(help="Browse the model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@app.command("publish")
def publish_command(
    run: Annotated[str, typer.Option("--run", help="Training run id to export and publish.")],
    name: Annotated[str, typer.Option("--name", help="Registry model name.")],
    version: Annotated[int | None, typer.Option(
        "--version", min=1, help="Explicit version (default: the next free number).")] = None,
    lake: LakeOption = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = "prefect",
) -> None:
    """Export RUN (parity-checked) and publish it as NAME's next version; move latest."""
    from ser_pipeline.export import ExportError
    from ser_pipeline.registry import RegistryError, publish_run
    from ser_pipeline.runs import RunError

    check_engine(engine)
    settings = settings_for(lake=lake, registry=registry)
    try:
        if engine == "prefect":
            from flows.publish import publish_flow

            summary = publish_flow(run_id=run, name=name, lake=settings.lake,
                                   registry=settings.registry, version=version)
        else:
            summary = publish_run(settings.lake, run, name=name, registry=settings.registry,
                                  version=version, settings=settings)
    except (RegistryError, ExportError, RunError, ValueError) as error:
        fail(f"{error} (registry unchanged)")
    emit(summary, title=f"published {summary['uri']}", as_json=as_json)


@models_app.command("list")
def list_command(
    name: Annotated[str | None, typer.Option("--name", help="Only this model.")] = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every complete version in the registry (interrupted publishes are not shown)."""
    from ser_pipeline.registry import Registry, RegistryError

    try:
        rows = Registry(registry, settings=settings_for(registry=registry)).list_models(name)
    except (RegistryError, ValueError) as error:
        fail(str(error))
    if as_json:
        emit({"models": rows}, title="models", as_json=True)
        return
    table = Table(title="models", header_style="bold")
    for column in ("name", "version", "latest", "student", "int8 KB", "dev CCC", "license",
                   "published"):
        table.add_column(column)
    for row in rows:
        ccc = row["dev_ccc_mean"]
        add_plain_row(table, row["name"], str(row["version"]), "*" if row["latest"] else "",
                      str(row["student"]),
                      f"{row['int8_bytes'] / 1000:.1f}" if row["int8_bytes"] else "withheld",
                      f"{ccc:.3f}" if isinstance(ccc, float) else "-", str(row["license"]),
                      str(row["published_at"])[:19])
    console.print(table)


@models_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default latest).")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """A version's manifest: files and hashes, CCC, provenance, licence."""
    from ser_pipeline.registry import Registry, RegistryError, parse_ref

    try:
        name, version = parse_ref(ref)
        manifest = Registry(registry, settings=settings_for(registry=registry)).show(
            name, version)
    except (RegistryError, ValueError) as error:
        fail(str(error))
    if as_json:
        emit(manifest, title=ref, as_json=True)
        return
    brief = {key: manifest.get(key) for key in (
        "uri", "published_at", "student", "run_id", "teacher_id", "lake_snapshot", "git_sha",
        "default_file")}
    brief["files"] = {n: f"{i['bytes']} B sha256 {i['sha256'][:16]}..."
                      for n, i in manifest["files"].items()}
    brief["ccc"] = {f"{c.get('reference')}/{c.get('split')}/{c.get('corpus')}":
                    f"A {c.get('arousal')} D {c.get('dominance')} V {c.get('valence')}"
                    for c in manifest.get("ccc", [])}
    int8 = manifest.get("int8") or {}
    recipe = int8.get("recipe") or {}
    if int8.get("withheld"):
        brief["int8"] = f"withheld: {int8.get('reason')} (fp32 is served)"
    elif recipe:
        brief["int8"] = (
            f"{recipe.get('name')}: activations {recipe.get('activation_type')}, weights "
            f"{recipe.get('weight_type')}, reduce_range {recipe.get('reduce_range')}, "
            f"per-channel {recipe.get('per_channel')}, ops {', '.join(recipe.get('op_types', []))}"
            f", {len(recipe.get('nodes_excluded') or [])} nodes kept fp32")
        if int8.get("int8_latency_ms") and int8.get("fp32_latency_ms"):
            brief["int8_latency"] = (f"{int8['int8_latency_ms']:.2f} ms vs fp32 "
                                     f"{int8['fp32_latency_ms']:.2f} ms per 5 s, 1 thread")
    machine = int8.get("parity_machine") or {}
    if machine:
        flags = ", ".join(flag for flag, present in (machine.get("flags") or {}).items()
                          if present)
        brief["parity_measured_on"] = f"{machine.get('kind')} ({machine.get('model')}; {flags})"
    brief["license"] = manifest["license"].get("id")
    if manifest.get("warnings"):
        brief["warnings"] = manifest["warnings"]
    emit(brief, title=f"{manifest['name']}@{manifest['version']}", as_json=False)
