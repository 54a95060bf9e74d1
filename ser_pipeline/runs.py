"""Training runs in the lake: ``runs/<run_id>/`` with typed run info and safetensors checkpoints.

Layout::

    runs/<run_id>/run.json               RunInfo: student, options, teacher, lake snapshot,
                                         seed, git sha, hyper-parameters, evaluations,
                                         best and last checkpoints, status
    runs/<run_id>/ckpt-<step>.safetensors  model weights (safetensors only: no pickle)
    runs/<run_id>/state-<step>.json      optimiser-free resume state (step, rng, epoch)

``run.json`` is a :class:`RunInfo` (schema version :data:`RUN_SCHEMA_VERSION`), written and
read only here (:func:`write_run_meta`, :func:`read_run_meta`). Each fact is stored once:
the run id is the folder's name, and the best and initial dev CCC are the evaluations at
``best_step`` and step 0 of ``history``. A ``run.json`` written before the schema had a
version (v1: flat keys, ``best_dev_ccc`` and ``initial_dev_ccc`` stored beside
``history``) still reads.

Checkpoints load only through safetensors, so a pickle planted in a run folder is never
executed.

Examples:
    >>> info = RunInfo(run_id="wav2small-x", student="wav2small", best_step=50, history=[
    ...     {"step": 0, "dev_ccc": {"arousal": 0.0, "dominance": 0.0, "valence": 0.0,
    ...                            "mean": 0.0}},
    ...     {"step": 50, "train_loss": 0.4, "dev_ccc": {"arousal": 0.6, "dominance": 0.5,
    ...                                                 "valence": 0.4, "mean": 0.5}}])
    >>> info.best_dev_ccc["mean"], info.initial_dev_ccc["mean"]
    (0.5, 0.0)
    >>> "run_id" in json.loads(info.to_json())  # the folder's name, not stored again
    False
    >>> RunInfo.from_record(json.loads(info.to_json()), run_id="wav2small-x") == info
    True
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

from ser_pipeline.lake import Lake
from ser_pipeline.storage import safe_name

#: Version of the ``run.json`` layout this code writes (files without one are version 1).
RUN_SCHEMA_VERSION = 2

RunStatus = Literal["running", "completed", "early_stopped", "interrupted", "stopped_budget",
                    "stopped_nan"]

class RunError(RuntimeError):
    """A run folder is missing or incomplete; the message names the run and the fix."""


def new_run_id(student: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{safe_name(student, what='student')}-{stamp}-{secrets.token_hex(3)}"


def run_path(run_id: str, name: str = "") -> str:
    base = f"runs/{safe_name(run_id, what='run id')}"
    return f"{base}/{name}" if name else base


class Evaluation(BaseModel):
    """One dev evaluation: the step, the mean train loss since the last one, the dev CCC."""

    model_config = ConfigDict(extra="forbid")

    step: int
    train_loss: float | None = None
    #: ``{arousal, dominance, valence, mean}``, audmetric CCC against the teacher.
    dev_ccc: dict[str, float]


class RunRuntime(BaseModel):
    """Where a run computed (a resume may change it)."""

    model_config = ConfigDict(extra="forbid")

    device: str
    precision: str
    workers: int
    compile: bool


class RunInfo(BaseModel):
    """``run.json``: what a training run is, and how far it got.

    Fields a run always records are set by the training loop; they are optional here only
    because a ``run.json`` written by other tools (or an interrupted one) may lack them.
    ``hyperparams`` are :class:`ser_pipeline.train.Hyperparams` as the run resolved them
    (``lr``, ``batch_size``, ``eval_every``, ``warmup_steps``) plus its schedule
    (``total_steps``, ``steps_per_epoch``, ``cache_audio``); the train package reads them
    back with ``Hyperparams.from_dict``.

    Transition: the mapping methods (``info["student"]``, ``info.get("corpora")``, ``in``,
    item assignment) serve callers written for the untyped ``run.json``; new code reads
    attributes.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schema_version: int = RUN_SCHEMA_VERSION
    #: The run folder's name; not stored in the file.
    run_id: str = Field(exclude=True)
    student: str
    student_options: dict[str, Any] = Field(default_factory=dict)
    teacher_id: str | None = None
    teacher_sha256: str | None = None
    #: Part files read per lake table (``audio``, ``teacher_labels``, ``splits``).
    lake_snapshot: dict[str, list[str]] | None = None
    seed: int | None = None
    git_sha: str | None = None
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    runtime: RunRuntime | None = None
    params: int | None = None
    corpora: list[str] | None = None
    split_name: str | None = None
    train_clips: int | None = None
    dev_clips: int | None = None
    train_audio_s: float | None = None
    #: Labelled clips left out, by reason (``labels_without_audio``, ...).
    skipped: dict[str, int] | None = None
    history: list[Evaluation] = Field(default_factory=list)
    best_step: int | None = None
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    #: The step of the last checkpoint (and of ``resume_state``).
    steps: int | None = None
    resume_state: str | None = None
    status: RunStatus | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    resumed_at: list[datetime] = Field(default_factory=list)
    resumed_git_sha: str | None = None
    #: Share of the training loop's wall time spent waiting for batches (last session).
    data_wait_fraction: float | None = None
    nan_step: int | None = None
    error: str | None = None

    @field_serializer("created_at", "finished_at", "resumed_at")
    def _isoformat(self, value: datetime | list[datetime] | None) -> str | list[str] | None:
        # datetime.isoformat ("+00:00"), as every other timestamp in the lake
        if isinstance(value, list):
            return [moment.isoformat() for moment in value]
        return None if value is None else value.isoformat()

    @model_validator(mode="after")
    def _best_is_an_evaluation(self) -> RunInfo:
        if self.best_step is not None and self.evaluation_at(self.best_step) is None:
            raise ValueError(f"best_step {self.best_step} has no evaluation in history")
        return self

    def evaluation_at(self, step: int) -> Evaluation | None:
        """The (last) evaluation recorded at ``step``, if any."""
        return next((e for e in reversed(self.history) if e.step == step), None)

    @property
    def best_dev_ccc(self) -> dict[str, float] | None:
        """Dev CCC of the best checkpoint (the evaluation at ``best_step``)."""
        best = None if self.best_step is None else self.evaluation_at(self.best_step)
        return None if best is None else dict(best.dev_ccc)

    @property
    def initial_dev_ccc(self) -> dict[str, float] | None:
        """Dev CCC before the first step."""
        initial = self.evaluation_at(0)
        return None if initial is None else dict(initial.dev_ccc)

    # -- serialisation (the only place run.json is written or parsed) -------------------
    def to_json(self) -> str:
        """The ``run.json`` text."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, run_id: str) -> RunInfo:
        """Parse a ``run.json`` record of any known schema version.

        Raises:
            ValueError: An invalid record, or one from a newer schema.
        """
        version = record.get("schema_version")
        if version is None:
            record = _from_v1(record)
        elif version != RUN_SCHEMA_VERSION:
            raise ValueError(f"schema_version {version!r} is not one this code reads "
                             f"(it writes {RUN_SCHEMA_VERSION}); upgrade ser-pipeline")
        return cls.model_validate({**record, "run_id": run_id})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able mapping view: stored fields, ``run_id``, best and initial dev CCC."""
        return {**self.model_dump(mode="json"), "run_id": self.run_id,
                "best_dev_ccc": self.best_dev_ccc, "initial_dev_ccc": self.initial_dev_ccc}

    # -- transition: the mapping view of the untyped run.json -----------------------------
    def __getitem__(self, key: str) -> Any:
        view = self.to_dict()
        if key not in view:
            raise KeyError(f"run.json has no {key!r}; fields: {', '.join(sorted(view))}")
        return view[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.to_dict().get(key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in type(self).model_fields or key == "run_id":
            raise KeyError(f"{key!r} is not a stored run.json field (best and initial dev CCC "
                           "follow history and best_step; the run id is the folder)")
        setattr(self, key, value)


def _from_v1(record: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 record (flat, no ``schema_version``) as a version-2 one.

    Version 1 stored ``run_id`` (the folder's name) and ``best_dev_ccc`` /
    ``initial_dev_ccc`` (copies of evaluations in ``history``); they are dropped. A record
    whose copy has no evaluation in ``history`` keeps it there, at its step.
    """
    data = {k: v for k, v in record.items()
            if k not in ("run_id", "best_dev_ccc", "initial_dev_ccc")}
    history = [dict(entry) for entry in data.get("history") or []]
    for step, ccc, what in ((data.get("best_step"), record.get("best_dev_ccc"), "best_dev_ccc"),
                            (0, record.get("initial_dev_ccc"), "initial_dev_ccc")):
        if ccc is None:
            continue
        if step is None:
            raise ValueError(f"{what} is recorded without best_step")
        entry = next((e for e in reversed(history) if e.get("step") == step), None)
        if entry is None:
            history.append({"step": step, "train_loss": None, "dev_ccc": ccc})
        elif entry.get("dev_ccc") != ccc:
            raise ValueError(f"{what} {ccc} disagrees with history at step {step}")
    data["history"] = sorted(history, key=lambda e: e.get("step", 0))
    return data


def write_run_meta(lake: Lake, run_id: str, info: RunInfo | Mapping[str, Any]) -> None:
    """Write ``runs/<run_id>/run.json`` (atomically) from a :class:`RunInfo`.

    A mapping is read as a ``run.json`` record first (transition for callers that build
    dicts), so it must be a valid one.
    """
    if not isinstance(info, RunInfo):
        info = _parse(info, run_id=run_id, where=run_path(run_id, "run.json"))
    lake.storage.write_bytes(run_path(run_id, "run.json"), info.to_json().encode())


def read_run_meta(lake: Lake, run_id: str) -> RunInfo:
    """The :class:`RunInfo` of a run (any schema version this code knows).

    Raises:
        RunError: No such run, or its ``run.json`` is not valid (the message names the file
            and the field).
    """
    path = run_path(run_id, "run.json")
    try:
        raw = lake.storage.read_bytes(path)
    except FileNotFoundError:
        known = ", ".join(list_runs(lake)[-5:]) or "none"
        raise RunError(
            f"run {run_id!r} not found in lake {lake.url} (recent runs: {known}); "
            "train one with 'ser train'"
        ) from None
    try:
        record = json.loads(raw)
    except ValueError as error:
        raise RunError(f"{lake.storage.uri(path)} is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise RunError(f"{lake.storage.uri(path)} holds a {type(record).__name__}, not a run")
    return _parse(record, run_id=run_id, where=lake.storage.uri(path))


def _parse(record: Mapping[str, Any], *, run_id: str, where: str) -> RunInfo:
    try:
        return RunInfo.from_record(record, run_id=run_id)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
                             for e in error.errors())
        raise RunError(f"{where} is not a valid run.json ({problems})") from None
    except ValueError as error:
        raise RunError(f"{where} is not a valid run.json ({error})") from None


def list_runs(lake: Lake) -> list[str]:
    return lake.storage.list_dirs("runs")


def save_checkpoint(lake: Lake, run_id: str, step: int, state_dict: dict) -> str:
    """Write model weights as safetensors; returns the root-relative path."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    path = run_path(run_id, f"ckpt-{step:08d}.safetensors")
    lake.storage.write_bytes(path, save(tensors))
    return path


def load_checkpoint(lake: Lake, path: str) -> dict:
    """Load weights from safetensors only (never ``torch.load`` of a pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not path.endswith(".safetensors"):
        raise RunError(f"refusing to load {path}: only .safetensors checkpoints are accepted")
    try:
        return load(lake.storage.read_bytes(path))
    except SafetensorError as error:
        raise RunError(
            f"{lake.storage.uri(path)} is not a valid safetensors file: {error}"
        ) from None


def load_run_model(lake: Lake, run_id: str, *, which: Literal["best", "last"] = "best"):
    """Rebuild a run's student and load its ``best`` (or ``last``) checkpoint.

    Returns ``(model, info)``: the model in eval mode on CPU, and its :class:`RunInfo`.
    """
    from ser_pipeline.students import build_student

    info = read_run_meta(lake, run_id)
    checkpoint = {"best": info.best_checkpoint, "last": info.last_checkpoint}[which]
    if not checkpoint:
        raise RunError(
            f"run {run_id!r} has no {which} checkpoint yet (it may still be training or have "
            "failed before its first evaluation); train longer or pick another run"
        )
    model = build_student(info.student, **info.student_options)
    model.load_state_dict(load_checkpoint(lake, checkpoint))
    return model.eval(), info
