# Thin veneer over `python -m bsa.cli.<task>`: every target maps Make variables onto config overrides.
.DEFAULT_GOAL := help
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STEPS  ?= 25
GPUS   ?= 1
NODES  ?= 1
# embedded-gpu where an NVIDIA GPU answers, embedded-cpu otherwise; PRESET=audioldm for the real teacher
PRESET ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo embedded-gpu || echo embedded-cpu)
EXP    ?= experiments/$(PRESET).yaml
ARGS   ?=
WORKER ?= 0
CAPTION ?= A loud high-pitched siren plays continuously in silence
WORKERS ?= 1
SEEDS  ?= 0
PARALLEL ?= 1
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help install chromium test lint data cache vae teacher evaluator vocoder text-embeddings generate evaluate distill-plan distill compare dashboard bench smoke

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n",$$1,$$2}'
	@echo "  variables: STEPS=$(STEPS) PRESET=$(PRESET) GPUS=$(GPUS) NODES=$(NODES) ARGS='key=value ...'"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## Create .venv and install bsa with its dev tools (every target depends on it)

# the dashboard test renders the page in Debian's headless chromium: install it when we can (root + apt)
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1)) \
	  || echo "note: chromium could not be installed; the dashboard rendering test will be skipped"; }

# one intra-op thread per process (inherited by the runs the tests start): the tests' tiny models
# run faster without thread hand-offs (the kill test: 131 s against 170 s with torch's 2 on 2 cores)
# and one test process per core, each test file whole on one (its module fixtures built once): most of
# a test's time is the commands it starts, one core each (the serial suite kept one of CI's two
# cores busy on average: 766 s serial, 477 s on two workers, 2026-11-28 on this 2-core machine)
test: install chromium  ## Run the CPU test suite (what CI runs)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow and not gpu" -n auto --dist loadfile --durations=15

lint: install  ## ruff check + format check
	$(VENV)/bin/ruff check bsa tests && $(VENV)/bin/ruff format --check bsa tests

data: install  ## Generate the embedded captioned data set (AudioCaps layout) under data/embedded
	$(PY) -m bsa.cli.data $(EXP) $(ARGS)

cache: install  ## Encode audio + captions into the latent cache (resumable; WORKER=i WORKERS=n to split)
	$(PY) -m bsa.cli.cache $(EXP) --worker-index $(WORKER) --worker-count $(WORKERS) $(ARGS)

# what `make distill` needs on a fresh machine, built once (the stamps are the commands' own outputs)
data/embedded/DATASET.json: | install
	$(PY) -m bsa.cli.data $(EXP)
data/cache/embedded/manifest.json: data/embedded/DATASET.json
	$(PY) -m bsa.cli.cache $(EXP)

vae: install  ## Retrain the embedded mel VAE from scratch into bsa/assets/vae (a GPU is advised)
	$(PY) -m bsa.cli.train vae $(EXP) $(ARGS)

teacher: install  ## Retrain the embedded teacher from scratch (needs `make cache`; a GPU is advised)
	$(PY) -m bsa.cli.train teacher $(EXP) $(ARGS)

evaluator: install  ## Retrain the embedded evaluator from scratch into bsa/assets/evaluator
	$(PY) -m bsa.cli.train evaluator $(EXP) $(ARGS)

vocoder: install  ## Retrain the shipped vocoder into bsa/assets/vocoder (mel → magnitude + Griffin-Lim; ARGS=train.vocoder.kind=hifigan: HiFi-GAN)
	$(PY) -m bsa.cli.train vocoder $(EXP) $(ARGS)

text-embeddings: install  ## MiniLM caption embeddings of the embedded set → .carry/ (for GPU machines)
	$(PY) -m bsa.cli.text_embeddings $(EXP) $(ARGS)

generate: install  ## Captions → wav: make generate CAPTION="a loud siren ..." [STEPS=..] [ARGS="eval.model=FOLDER"]
	$(PY) -m bsa.cli.generate $(EXP) --caption "$(CAPTION)" --steps $(STEPS) $(ARGS)

evaluate: install  ## FAD / IS / CLAP / attribute accuracy of models.teacher at eval.steps
	$(PY) -m bsa.cli.evaluate $(EXP) $(ARGS)

DISTILL_ARGS = $(EXP) distill.target_steps=$(STEPS) trainer.devices=$(GPUS) trainer.num_nodes=$(NODES) $(ARGS)

distill-plan: install  ## Validate the config and print the stage plan (what `make distill` would run)
	$(PY) -m bsa.cli.distill $(DISTILL_ARGS) --dry-run

distill: distill-plan data/cache/embedded/manifest.json  ## Distil the teacher down to STEPS steps (PRESET, GPUS, NODES, ARGS)
	$(PY) -m bsa.cli.distill $(DISTILL_ARGS)

# SWEEP=1: the BSA(floor, γ) map of experiments/weighting-sweep.yaml instead of the five weightings
COMPARE_ARGS = $(EXP) $(if $(SWEEP),experiments/weighting-sweep.yaml) distill.target_steps=$(STEPS) trainer.devices=$(GPUS) trainer.num_nodes=$(NODES) \
	compare.seeds=[$(SEEDS)] compare.parallel=$(PARALLEL) $(ARGS)

compare: distill-plan data/cache/embedded/manifest.json  ## One distillation per weighting, same teacher (SEEDS=0,1,2 PARALLEL=n SWEEP=1), then results + dashboard
	$(PY) -m bsa.cli.compare $(COMPARE_ARGS)

dashboard: install  ## Rebuild the static HTML dashboard of a comparison (same STEPS/ARGS as make compare)
	$(PY) -m bsa.cli.dashboard $(COMPARE_ARGS)

bench: install  ## Sampling speed-up, training throughput/MFU, loading rate → runs/bench.json (GPU for absolute numbers)
	$(PY) -m bsa.cli.bench --out runs/bench.json $(ARGS)

smoke: install  ## Tiny everything on CPU (debug preset): data → VAE → cache → teacher → evaluator → 8 → 4 → 2
	$(PY) -m bsa.cli.data experiments/debug.yaml && $(PY) -m bsa.cli.train vae experiments/debug.yaml \
	  && $(PY) -m bsa.cli.cache experiments/debug.yaml && $(PY) -m bsa.cli.train teacher experiments/debug.yaml \
	  && $(PY) -m bsa.cli.train evaluator experiments/debug.yaml && $(PY) -m bsa.cli.distill experiments/debug.yaml $(ARGS)
