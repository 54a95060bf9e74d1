"""The licence a distilled model inherits from its teacher's weights.

Which licence a teacher has is the teacher package's rule
(:func:`ser_pipeline.teacher.core.license_for_id`, also used when a teacher is loaded);
this module only says what that licence means for distributing a student.
"""

from __future__ import annotations

import warnings

from ser_pipeline.export.result import License

#: Licences that restrict the use of anything distilled from the teacher.
RESTRICTIVE_LICENSES = {
    "cc-by-nc-sa-4.0": "non-commercial use only, and derivatives must share alike "
                       "(inherited from the audEERING teacher's weights)",
}


def teacher_license(teacher_id: str | None) -> License:
    """Licence of a teacher's weights, inherited by every student distilled from it.

    An unknown teacher gives ``"unknown"`` and a warning: publishing should not pretend
    a licence it cannot vouch for.

    Examples:
        >>> teacher_license("audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim").id
        'cc-by-nc-sa-4.0'
    """
    from ser_pipeline.teacher.core import license_for_id

    source = f"teacher {teacher_id}"
    found = license_for_id(teacher_id)
    if found is None:
        warning = (f"licence of teacher {teacher_id!r} is unknown: check the teacher "
                   "weights' licence before distributing this model")
        warnings.warn(warning, stacklevel=2)
        return License(id="unknown", source=source, restricts_use=None, warning=warning)
    restriction = RESTRICTIVE_LICENSES.get(found.lower())
    return License(id=found, source=source, restricts_use=restriction is not None,
                   warning=f"{found}: {restriction}" if restriction else None)
