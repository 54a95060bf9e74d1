"""The no-regression gate: may a candidate become ``latest`` of its name?

Before a publish moves ``latest``, the candidate is compared with the version ``latest``
points at, on the gate corpora's split (default: the run's training corpora, ``dev``),
against the run's teacher, using the file each would serve
(:func:`~ser_pipeline.registry.manifest.serving_for` for the candidate, the manifest's
``serving.default_file`` for ``latest``). Both predict the same clips (stored in the
lake's ``predictions``, reused later by ``ser evaluate``), and
:func:`ser_pipeline.stats.regression_gate` decides: a candidate *significantly worse* on
any dimension of any gate corpus (paired ΔCCC interval wholly below 0) is **held back**:
it is published as a version ``latest`` does not point at, kept for audit and for a later
``ser models promote``. The comparisons are stored in ``comparisons`` (purpose ``gate``).

* The first version of a name passes (nothing to compare with).
* A candidate that cannot be compared (no gate clips with references, ``latest``
  unreadable) is held back too, with the reason: the gate fails closed.
* ``allow_regression`` moves ``latest`` anyway; the record says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ser_pipeline.config import Settings, get_settings
from ser_pipeline.registry.errors import ModelNotFoundError, RegistryError
from ser_pipeline.registry.manifest import GateRecord, serving_for

if TYPE_CHECKING:
    from ser_pipeline.export import ExportResult
    from ser_pipeline.lake import Lake
    from ser_pipeline.registry.store import RegistryStore

GATE_SPLIT = "dev"
GATE_REFERENCE = "teacher"


def gate_candidate(lake: Lake, export: ExportResult, *, registry: RegistryStore, name: str,
                   corpora: Sequence[str] | None = None, split: str = GATE_SPLIT,
                   reference: str = GATE_REFERENCE, allow_regression: bool = False,
                   settings: Settings | None = None) -> GateRecord:
    """Compare an export with ``latest`` of ``name`` and decide whether it may replace it.

    Args:
        lake: The lake with the gate clips, their labels and speakers (predictions and
            comparisons are written there).
        export: The candidate (an export of a training run).
        registry: The registry ``name`` is published in.
        name: The model name.
        corpora: Gate corpora (default: the run's training corpora).
        split: Gate split (default ``dev``).
        reference: ``teacher`` (the run's teacher; default) or ``human``.
        allow_regression: Move ``latest`` even when the candidate is worse.
        settings: Settings (shard size, workers, cache); default from the environment.

    Returns:
        The :class:`~ser_pipeline.registry.manifest.GateRecord` the manifest keeps.

    Raises:
        RegistryError: the export has no training run.
    """
    from ser_pipeline.evaluate import EvaluateError, OnnxPredictor, paired_data
    from ser_pipeline.evaluate.compare import GATE, store_comparison
    from ser_pipeline.registry.uri import resolve_model
    from ser_pipeline.stats import StatsError, regression_gate

    settings = settings or get_settings()
    if export.run is None:
        raise RegistryError("the gate compares exports of training runs (ser export --run)")
    run = export.run
    chosen = list(corpora or run.training.corpora or [])
    base = {"corpora": chosen, "split": split, "reference": reference,
            "teacher_id": run.provenance.teacher_id, "allow_regression": allow_regression}
    try:
        latest = registry.latest_version(name)
    except ModelNotFoundError:
        return GateRecord(passed=True, promoted=True, **base,
                          reason=f"first version of {name}: nothing to compare with")
    latest_name = f"{name}@{latest}"

    def held(reason: str, **more: object) -> GateRecord:
        promoted = allow_regression
        tail = ("; --allow-regression: latest moved anyway" if promoted
                else f"; latest stays {latest_name}")
        return GateRecord(passed=False, promoted=promoted, reason=reason + tail,
                          compared_with=latest_name, **base, **more)  # type: ignore[arg-type]

    if not chosen:
        return held(f"not compared with {latest_name}: the run records no training corpora; "
                    "name the gate corpus (--gate-corpus)")
    candidate_file = export.files[serving_for(export).default_file].path
    candidate_name = f"{name} candidate ({run.provenance.run_id})"
    try:
        candidate = OnnxPredictor(candidate_file, name=candidate_name)
        path, _ = resolve_model(f"registry://{latest_name}", settings=settings,
                                registry=registry.url)
        current = OnnxPredictor(path, name=latest_name)
        paired, notices = paired_data(lake, candidate, current, corpora=chosen, split=split,
                                      reference=reference,
                                      teacher_id=run.provenance.teacher_id,
                                      settings=settings)
    except (EvaluateError, RegistryError, OSError, ValueError) as error:
        return held(f"not compared with {latest_name}: {str(error).splitlines()[0]}")
    if not paired:
        return held(f"not compared with {latest_name}: " + "; ".join(notices))
    missing = sorted(set(chosen) - {data.selection.corpus for data in paired})
    reasons, failed, regressed, ids = [], [], [], []
    for data in paired:
        try:
            decision = regression_gate(data.a, data.b, data.references, units=data.speakers,
                                       candidate_name="candidate", latest_name=latest_name)
        except StatsError as error:
            return held(f"not compared with {latest_name} on {data.selection.corpus}: "
                        f"{error}")
        assert decision.comparison is not None  # latest is given
        ids.append(store_comparison(lake, data, candidate.identity, current.identity,
                                    decision.comparison, purpose=GATE).comparison_id)
        regressed += [f"{data.selection.corpus}:{d}" for d in decision.regressed]
        line = f"{data.selection.corpus}/{split}: {decision.reason}"
        (reasons if decision.passed else failed).append(line)
    if missing:
        return held(f"not compared with {latest_name} on {', '.join(missing)} (no {split} "
                    f"clips with {reference} labels there)", regressed=regressed,
                    comparison_ids=ids)
    if failed:
        return held("held back: " + "; ".join(failed), regressed=regressed,
                    comparison_ids=ids)
    return GateRecord(passed=True, promoted=True, compared_with=latest_name,
                      reason="; ".join(reasons), comparison_ids=ids, **base)
