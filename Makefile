# The two commands a newcomer runs: `make run` (demo end to end) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A CPU build of torch when one lies in pip's find-links folder (as on the project's machines):
# BERTopic pulls sentence-transformers and torch, and PyPI's default Linux torch is a
# multi-gigabyte CUDA build that a CPU-only tool does not need. Without a local wheel, torch
# comes from PyTorch's CPU index; where that index is unreachable, from PyPI (with a warning).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU_WHEEL := $(firstword $(wildcard $(PIP_FIND_LINKS)/torch-*+cpu-*.whl /opt/wheels/torch-*+cpu-*.whl))

.PHONY: install sysdeps run test test-fast bench eval-themes clean-outputs help

help:
	@echo "make run         create .venv, install, run the demo pipeline end to end (report in outputs/)"
	@echo "make test        install if needed and run the test suite"
	@echo "make eval-themes score the theme detector on ../shared/data/gold/dev.jsonl"
	@echo "make bench       run the benchmarks in bench/ (slow; by hand)"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(if $(TORCH_CPU_WHEEL),$(BIN)/python -m pip install --quiet "$(TORCH_CPU_WHEEL)",$(BIN)/python -m pip install --quiet --timeout 20 --retries 1 --index-url $(TORCH_CPU_INDEX) torch || echo "warning: PyTorch's CPU index ($(TORCH_CPU_INDEX)) is not reachable: pip will take torch from PyPI, whose Linux build carries CUDA (several GB more to download)")
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# System packages the tests and OCR use: tesseract (French), chromium (report browser test),
# and a single-node SLURM (slurmctld, slurmd, munge: the compute layer's SLURM test starts it
# with .ci/slurm-single-node.sh). Installed when missing and apt-get is usable; without them
# the tests that need them skip.
sysdeps:
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx fra || missing="$$missing tesseract-ocr tesseract-ocr-fra"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1 || missing="$$missing slurmctld slurmd slurm-client"; \
	command -v munged >/dev/null 2>&1 || missing="$$missing munge"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; the tests that need them will skip"; \
	  else echo "warning: missing$$missing (apt-get install them); the tests that need them will skip"; fi; \
	fi

run: $(STAMP)
	$(BIN)/barometre demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider

eval-themes: $(STAMP)
	$(BIN)/barometre eval

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean-outputs:
	rm -rf outputs/tables outputs/plots outputs/report outputs/models outputs/cache outputs/run_info.json
