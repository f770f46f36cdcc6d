# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genbench-installed
CORES ?= all
# the slowest tests are listed at the end of every run (CI logs show where the suite's time goes)
PYTEST_ARGS ?= --durations=12
# Debian packages (installed via apt-get when run as root; a non-root user must have them already).
# `make run` needs none: everything the pipeline imports comes from pip wheels. RUN_DEB_PACKAGES is the place for
# one it ever needs.
RUN_DEB_PACKAGES ?=
# Only `make test` needs these. chromium: the headless browser the report and review tests drive through
# playwright (playwright's own browser download needs the internet; Debian's build works offline). libusb-1.0-0:
# open3d (a test reference of the 3D metrics) links against it.
TEST_DEB_PACKAGES ?= chromium libusb-1.0-0
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run diff2to3-vae diff2to3-ablation test setup system-deps test-system-deps lint dry-run-paper slurm-profile clean-results report golden

run: setup
	$(BIN)/snakemake --cores $(CORES)

# The toy Diff2to3's Table 1 (docs/diff2to3.md): the mini-world's config plus config/diff2to3.yaml, its table only
# (`snakemake diff2to3` with the same configs makes every Diff2to3 table).
diff2to3-vae: setup
	$(BIN)/snakemake results/tables/diff2to3_vae.parquet results/tables/diff2to3_vae.csv --cores $(CORES) \
		--configfile config/config.yaml config/diff2to3.yaml

# Table 3 (Exp 1-4) alone: the same overlay, its table only
diff2to3-ablation: setup
	$(BIN)/snakemake results/tables/diff2to3_ablation.parquet results/tables/diff2to3_ablation.csv --cores $(CORES) \
		--configfile config/config.yaml config/diff2to3.yaml

test: setup test-system-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

setup: system-deps $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Installs only what is missing of the packages $(1) (for $(2)); fails naming them for a non-root user.
define install_deb
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "$(2) needs Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi
endef

system-deps:
	$(call install_deb,$(RUN_DEB_PACKAGES),genbench)

test-system-deps:
	$(call install_deb,$(TEST_DEB_PACKAGES),make test)

# The Snakemake HTML report of the last run: every figure and paper table with its caption.
report: setup
	$(BIN)/snakemake --report results/report.html

# Regenerate the golden artifacts deliberately (after a change that is meant to move numbers); review the diff.
golden: setup
	rm -rf .golden-run
	mkdir -p .golden-run/config && cp -r config/curation .golden-run/config/  # the review decision files
	$(BIN)/snakemake --cores $(CORES) --directory .golden-run --configfile tests/config/tiny.yaml
	$(BIN)/genbench snapshot .golden-run/results tests/golden --tolerances tests/golden/tolerances.yaml
	@echo "review with: git diff --stat tests/golden"

lint: setup
	$(BIN)/ruff check workflow tests benchmarks
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow   # workflow/Snakefile and the rules; `snakefmt workflow` formats them

dry-run-paper: setup
	$(BIN)/snakemake -n --profile profiles/slurm --configfile config/paper.yaml

# One documented step so that `snakemake --profile slurm` resolves from the repo root:
# Snakemake searches ~/.config/snakemake/<name>, so link the repo's profile there.
slurm-profile:
	mkdir -p $(HOME)/.config/snakemake
	ln -sfn $(abspath profiles/slurm) $(HOME)/.config/snakemake/slurm
	@echo "linked $(HOME)/.config/snakemake/slurm -> $(abspath profiles/slurm)"

clean-results:
	rm -rf results logs .snakemake
