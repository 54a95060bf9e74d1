#!/usr/bin/env bash
# The GPU benchmarks in one call (issue 21 item 5): teacher labeling throughput (large
# wav2vec2 shape), student training throughput and data-wait share, and one
# `ser distill --train-device cuda` on a small lake. At most --budget-s (default 480 s)
# on one H100/H200; one JSON results file.
#
#   bench/gpu.sh [--device cuda|cuda:N|cpu] [--out FILE] [--budget-s S] [--steps LIST]
#
# Python: $PYTHON, else .venv/bin/python, else python3. It needs ser-pipeline's
# dependencies with a CUDA build of torch (`make test` builds .venv on a fresh machine;
# on a GPU host install torch for its CUDA first). `--device cpu` runs smoke sizes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x $REPO/.venv/bin/python ]]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import torch, transformers, pyarrow, soundfile, soxr, prefect, ser_pipeline' \
    2>/dev/null; then
  echo "bench/gpu.sh: error: $PYTHON lacks ser-pipeline's dependencies; run 'make test' once" \
       "(creates .venv) or set PYTHON to an environment with them" >&2
  exit 2
fi
cd "$REPO"
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
exec "$PYTHON" bench/gpu.py "$@"
