"""The student catalog: every student, its family, and each family's defaults.

A family is one model definition (``wav2small.py``, ``mobilenet.py``) with what every
student built from it shares: the AdamW learning rate when ``--lr`` is not given, and the
paper's figures that export checks. A student is a name, its family and the constructor
options that make it that student (a width, a timm architecture).

This module is the one place that lists students: the CLI, the flows and training read
it. It imports no torch (constructors import their model module when called), so ``ser``
can list students without paying torch's import (about 3 s).

To add a student, add a :class:`Student` to :data:`STUDENTS` below; to add a model
definition, add its module and a :class:`StudentFamily` here. A student always names
its family, so a new architecture never inherits another family's learning rate.

Examples:
    >>> family_of("wav2small-72k").name, family_of("wav2small-72k").learning_rate
    ('wav2small', 0.003)
    >>> family_of("mobilenetv3-s").learning_rate
    0.001
    >>> family_of("wav2small").paper_targets.to_dict()
    {'int8_bytes': 120000, 'latency_ms': 9.0, 'peak_rss_increase_mb': 9.0}
    >>> family_of("mobilenetv4-s").paper_targets is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class PaperTargets:
    """The paper's figures for a family's int8 ONNX model on one CPU core.

    Attributes:
        int8_bytes: Size of the int8 ONNX file.
        latency_ms: Milliseconds per 5 s clip, one thread.
        peak_rss_increase_mb: Peak resident memory added by loading and running it.
    """

    int8_bytes: int
    latency_ms: float
    peak_rss_increase_mb: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class StudentFamily:
    """One model definition and the defaults its students share.

    Attributes:
        name: Family name (``wav2small``, ``mobilenet``).
        build: Constructor taking keyword options; returns the ``nn.Module``.
        learning_rate: AdamW learning rate when the run does not set one.
        paper_targets: The paper's int8 size, latency and memory figures, if it gives any.
    """

    name: str
    build: Callable[..., nn.Module] = field(repr=False)
    learning_rate: float
    paper_targets: PaperTargets | None = None

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(f"student family {self.name!r}: learning_rate must be > 0, "
                             f"got {self.learning_rate}")


@dataclass(frozen=True)
class Student:
    """A named student: its family and the constructor options that define it.

    Attributes:
        name: The name runs, the CLI and the registry use (``mobilenetv4-s``).
        family: Its :class:`StudentFamily` (required: defaults come from there only).
        defaults: Constructor options that make this student (user options override them;
            only user options are recorded in ``model.options``).
        summary: One line for help texts.
    """

    name: str
    family: StudentFamily
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.family, StudentFamily):
            raise TypeError(
                f"student {self.name!r} declares no StudentFamily (got {self.family!r}): "
                "declare its family (learning rate, paper targets) in "
                "ser_pipeline/students/families.py and pass it as Student(name, family)")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))


# -- the families -----------------------------------------------------------------------------
def _build_wav2small(**options: Any) -> nn.Module:
    from ser_pipeline.students.wav2small import Wav2Small

    return Wav2Small(**options)


def _build_mobilenet(**options: Any) -> nn.Module:
    from ser_pipeline.students.mobilenet import MobileNetStudent

    return MobileNetStudent(**options)


#: Wav2Small (students/wav2small.py). The paper quotes 120 KB int8, 9 ms per 5 s clip and
#: 9 MB RAM on one core for its 72K-parameter model.
WAV2SMALL = StudentFamily(
    name="wav2small", build=_build_wav2small, learning_rate=3e-3,
    paper_targets=PaperTargets(int8_bytes=120_000, latency_ms=9.0, peak_rss_increase_mb=9.0))

#: timm MobileNets on a log-mel front end (students/mobilenet.py). The paper's figures
#: differ per architecture (5 ms V4-S, 11 ms V3-S), so the family sets none.
MOBILENET = StudentFamily(name="mobilenet", build=_build_mobilenet, learning_rate=1e-3)

FAMILIES: Mapping[str, StudentFamily] = MappingProxyType(
    {family.name: family for family in (WAV2SMALL, MOBILENET)})


# -- the students -----------------------------------------------------------------------------
def _catalog(*students: Student) -> Mapping[str, Student]:
    names = [student.name for student in students]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"students declared twice in the catalog: {', '.join(duplicated)}")
    return MappingProxyType({student.name: student for student in students})


#: Every student, by name (in the order help texts list them).
STUDENTS: Mapping[str, Student] = _catalog(
    Student("wav2small", WAV2SMALL, summary="Wav2Small at the public width (13 channels, "
            "10,897 parameters)"),
    # 34 channels: the widest whose parameter count stays under the paper's 72K
    # (width_for_budget(72_000) in students/wav2small.py; 70,621 parameters).
    Student("wav2small-72k", WAV2SMALL, {"channels": 34},
            summary="Wav2Small at the paper's 72K parameters (34 channels)"),
    Student("mobilenetv4-s", MOBILENET, {"arch": "mobilenetv4_conv_small"},
            summary="MobileNetV4-S (timm mobilenetv4_conv_small)"),
    Student("mobilenetv4-m", MOBILENET, {"arch": "mobilenetv4_conv_medium"},
            summary="MobileNetV4-M (timm mobilenetv4_conv_medium)"),
    Student("mobilenetv3-s", MOBILENET, {"arch": "mobilenetv3_small_100"},
            summary="MobileNetV3-S (timm mobilenetv3_small_100)"),
    Student("mobilenetv3-l", MOBILENET, {"arch": "mobilenetv3_large_100"},
            summary="MobileNetV3-L (timm mobilenetv3_large_100)"),
)


def check_student(name: str) -> str:
    """Return ``name`` if it is a known student, else raise ``ValueError`` naming them.

    Examples:
        >>> check_student("wav2small")
        'wav2small'
        >>> check_student("resnet")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: unknown student 'resnet'; known students: wav2small, ...
    """
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; known students: {', '.join(STUDENTS)} "
                         "(a new one is declared in ser_pipeline/students/families.py)")
    return name


def student_spec(name: str) -> Student:
    """The catalog entry of a student (``ValueError`` naming the known ones if unknown)."""
    return STUDENTS[check_student(name)]


def family_of(student: str) -> StudentFamily:
    """The family of a student, by name: its learning rate and the paper's targets.

    Raises:
        ValueError: Unknown student (the message lists the known ones and where to add one).
    """
    return student_spec(student).family


def students_help() -> str:
    """The known student names, comma-separated, for help texts."""
    return ", ".join(STUDENTS)


def learning_rates_help() -> str:
    """Each family's default learning rate, for help texts.

    Examples:
        >>> learning_rates_help()
        'wav2small 0.003, mobilenet 0.001'
    """
    return ", ".join(f"{name} {family.learning_rate:g}" for name, family in FAMILIES.items())
