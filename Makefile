# The README's quick start: `make run` (main job on the embedded toy world) and `make test`.
# `make run ARGS="trainer.steps=5"` passes config overrides to the job.
VENV ?= .venv
PY := $(VENV)/bin/python
# A user with a CUDA torch already in the venv keeps it; otherwise the CPU build this machine has on disk.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-stamp
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# pip on this machine warns about absent local mirrors; hide only those lines, keep pip's exit code.
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: install run test test-slow bench pretrain clean

# pip byte-compiles what it installs; keep it so: with PYTHONDONTWRITEBYTECODE set (as on this machine) nothing
# else writes .pyc files, and every process would recompile what it imports (measured: a fresh-clone suite ran
# ~1.7x slower with pip's --no-compile; compileall -j 0 afterwards was no faster than pip's own compile).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(QUIET)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)" $(QUIET)
	# deepspeed ships as a source package: built against the venv's torch (isolation would fetch a CUDA torch)
	DS_BUILD_OPS=0 $(PY) -m pip install -q --no-build-isolation "deepspeed>=0.15" $(QUIET)
	$(PY) -m pip install -q -e ".[dev,deepspeed]" $(QUIET)
	$(PY) -c "import torch, transformers, ray, omegaconf, scipy, deepspeed, peft, toyworld, models"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) launch/meta_ttrl.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# side-by-side ratios (docs/results/performance.md); the sampler section runs on a tiny Janus-Pro-layout checkpoint
bench: $(STAMP)
	$(PY) tests/fixtures/janus_pro_like.py $(VENV)/bench_janus_pro
	$(PY) tests/fixtures/flow_like.py $(VENV)/bench_flow
	$(PY) launch/bench.py janus_pro=$(VENV)/bench_janus_pro flow=$(VENV)/bench_flow $(ARGS)

pretrain: $(STAMP)
	$(PY) launch/pretrain_toy.py

clean:
	rm -rf $(VENV) *.egg-info
