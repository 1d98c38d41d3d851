# Set-up and main jobs. `make demo` and `make test` create .venv when absent and install
# the project into it; nothing else needs to be installed by hand.
#
# TORCH_SPEC pins the CPU wheel so that no CUDA packages are pulled on CPU machines.
# On a GPU machine:  make demo TORCH_SPEC="torch"   (or install your CUDA torch into .venv first)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.jstip-installed

.PHONY: setup audio-libs demo test clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]" "$(TORCH_SPEC)"  # the pin again, so no resolver backtracking swaps torch
	touch $(STAMP)

setup: $(STAMP)

# FFmpeg's shared libraries, which torchcodec (and so `datasets`' Audio decoding) loads. Installed
# with apt-get when missing and this is root on Debian/Ubuntu (CI); otherwise it says what to install.
audio-libs:
	@if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so\.'; then \
	  echo "FFmpeg libraries: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg; \
	else \
	  echo "FFmpeg libraries missing: install them (Debian/Ubuntu: sudo apt-get install ffmpeg) to decode shards with datasets"; \
	fi

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@for f in metrics/*.json; do PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show "$$f"; done  # a small table per stage

# -rs: say what was skipped and why (e.g. audio decoding through `datasets` without FFmpeg)
test: $(STAMP)
	$(BIN)/python -m pytest -q -rs

clean-data:
	rm -rf data metrics plots reports checkpoints dvc.lock demo/dvc.lock
