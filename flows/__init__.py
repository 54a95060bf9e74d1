"""Prefect flows over the ser_pipeline library (one file per stage, plus distill and relabel).

Importing this package sets Prefect defaults before any flow module imports Prefect, which
reads its logging settings on import: ``ser_pipeline`` is an extra logger, so the library's
progress lines (e.g. every training evaluation) reach the flow run's log and the console.
"""

import os

_extra = os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "")
if "ser_pipeline" not in [name.strip() for name in _extra.split(",")]:
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(
        name for name in (_extra, "ser_pipeline") if name)
