# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use. Pins for this machine's torch live in constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip -q --disable-pip-version-check
STAMP  := $(VENV)/.ser-installed
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export HF_HUB_OFFLINE ?= 1

.PHONY: demo demo-teacher test test-fast lint bench bench-gpu check-arm64 espeak chromium clean-demo

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing ser-pipeline into $(VENV) (first time: a few minutes, torch is large)"
	@$(PIP) install -c constraints.txt -e '.[test]' > $(VENV)/pip.log 2>&1 \
	  || { grep -v "is ignored: it is neither" $(VENV)/pip.log; \
	       echo "error: pip install failed (full log: $(VENV)/pip.log)"; exit 1; }
	@$(BIN)/python -c "import torch, torchvision, timm, ser_pipeline" \
	  || { echo "error: the venv is broken; delete $(VENV) and re-run"; exit 1; }
	@touch $(STAMP)

espeak:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing espeak-ng (needed to synthesize the demo corpus)"; \
	    (apt-get update -qq && apt-get install -y -qq espeak-ng) >/dev/null; \
	  else \
	    echo "error: espeak-ng is missing. Install it: 'sudo apt-get install espeak-ng'"\
	         "(Debian/Ubuntu), 'brew install espeak-ng' (macOS), then re-run make demo."; \
	    exit 1; \
	  fi; }

# Headless Chromium renders report.html in the layout test (skipped, saying so, without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (the HTML report's layout test renders the page)"; \
	    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null \
	      || echo "notice: chromium could not be installed; its layout test will be skipped"; \
	  else \
	    echo "notice: chromium is missing ('sudo apt-get install chromium'); the HTML"\
	         "report's browser layout test will be skipped"; \
	  fi; }

demo: $(STAMP) espeak
	$(BIN)/ser distill

# Rebuilds the demo teacher that ships in ser_pipeline/demo/teacher_weights/ (full fine-tuning
# of a random tiny wav2vec2 on the demo corpus's human labels; ~10 min on 2 cores).
demo-teacher: $(STAMP) espeak
	$(BIN)/ser demo-teacher --workdir demo-teacher-build

test: $(STAMP) espeak chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check ser_pipeline flows tests bench

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# ONNX Runtime's aarch64 int8 kernels under qemu against x86 and fp32 (not part of `make
# test`: the arm64 root takes ~8 min to build the first time, then it is cached). Needs
# root. ARM64_ARGS: model folders / .onnx files, --registry URL (default: $SER_REGISTRY).
check-arm64: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) scripts/check_arm64.sh $(ARM64_ARGS)

# The GPU benchmarks in one call (<= 8 min on one H100/H200), results in bench/out/gpu.json.
# GPU_ARGS: e.g. --device cuda:1, --budget-s 480, or --device cpu for a smoke run.
bench-gpu: $(STAMP)
	PYTHON=$(abspath $(BIN)/python) bench/gpu.sh $(GPU_ARGS)

clean-demo:
	rm -rf demo lake registry ser.duckdb report.html demo-teacher-build
