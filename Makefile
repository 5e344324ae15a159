# minewatch: two commands do all set-up.  `make demo` runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.minewatch-installed
BASE_VENV := .venv-base
JOBS   ?= 2

.PHONY: help demo test test-fast test-base lint model model-dense model-satellite models bench bench-quick bench-many clean

help:
	@echo "make demo        generate a sample scene, scan it with the committed model, evaluate (creates .venv)"
	@echo "make test        create/update .venv and run the test suite and the quick-start notebook"
	@echo "make test-base   torch-free tests in a base-only venv (the field-laptop install)"
	@echo "make model       train the default model on generated scenes and export models/minewatch-drone.onnx"
	@echo "make model-dense a dense head for it (outlines, counts, power): runs/dense/minewatch-drone-dense.onnx"
	@echo "make model-satellite  the same for models/minewatch-satellite.onnx (RGBN + Landsat-like thermal)"
	@echo "make models      both"
	@echo "make bench       full benchmarks, rewrites BENCHMARKS.md; make bench-quick: small sizes"
	@echo "make bench-many  many scenes on Dask vs a shell loop of scans, rewrites BENCHMARKS.md's section"
	@echo "make lint        ruff"

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $(STAMP)

$(BASE_VENV)/.installed: pyproject.toml
	test -x $(BASE_VENV)/bin/python || $(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install -q --upgrade pip
	$(BASE_VENV)/bin/python -m pip install -q -e . pytest hypothesis
	touch $@

demo: $(STAMP)
	$(VENV)/bin/minewatch demo --out demo-out

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -p no:cacheprovider tests
	$(PY) -m ruff check .

test-base: $(BASE_VENV)/.installed
	$(BASE_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not torch and not postgis" tests

lint: $(STAMP)
	$(PY) -m ruff check .

# The committed drone model in two stages: 80 epochs (configs/train/default.yaml, runs/default-base), then a second,
# lower cycle of 30 from there (configs/train/default-polish.yaml, its scenes reused, runs/default); export (ONNX and
# the weights alone) and card (models/MODEL_CARD.md) beside the model it replaces. About 2.5 hours on 2 CPU cores.
model: $(STAMP)
	$(VENV)/bin/minewatch train --config configs/train/default.yaml --out runs/default-base
	$(VENV)/bin/minewatch train --config configs/train/default-polish.yaml --out runs/default
	cp models/minewatch-drone.onnx runs/default/previous.onnx
	$(VENV)/bin/minewatch export runs/default/best.pt -o models/minewatch-drone.onnx --weights-out models/minewatch-drone.pt
	$(VENV)/bin/minewatch card runs/default models/minewatch-drone.onnx --previous runs/default/previous.onnx

# A dense head (site outlines, container counts, power) for the committed drone classifier, in three stages:
# the decoder alone on the frozen classifier (configs/train/dense.yaml, runs/dense-head), then decoder and
# backbone together from there (configs/train/dense-joint.yaml, its scenes reused, runs/dense-joint), then a
# second, lower cycle of that (configs/train/dense-polish.yaml): runs/dense/minewatch-drone-dense.onnx and its
# card runs/dense/MODEL_CARD.md beside the classifier alone. About 3 hours on 2 CPU cores.
# Not the committed default: BENCHMARKS.md, "Dense head".
model-dense: $(STAMP)
	$(VENV)/bin/minewatch train --config configs/train/dense.yaml --out runs/dense-head
	$(VENV)/bin/minewatch train --config configs/train/dense-joint.yaml --out runs/dense-joint
	$(VENV)/bin/minewatch train --config configs/train/dense-polish.yaml --out runs/dense
	$(VENV)/bin/minewatch export runs/dense/best.pt -o runs/dense/minewatch-drone-dense.onnx \
		--weights-out runs/dense/minewatch-drone-dense.pt
	$(VENV)/bin/minewatch card runs/dense runs/dense/minewatch-drone-dense.onnx --previous models/minewatch-drone.onnx

# The satellite model in two stages: 80 epochs (configs/train/satellite.yaml, runs/satellite-base), then a second,
# lower cycle of 30 from there (configs/train/satellite-polish.yaml, its scenes reused, runs/satellite); export (ONNX
# and the weights alone), card (models/MODEL_CARD-satellite.md), side by side with the model it replaces once there
# is one. About 2 hours on 2 CPU cores.
model-satellite: $(STAMP)
	$(VENV)/bin/minewatch train --config configs/train/satellite.yaml --out runs/satellite-base
	$(VENV)/bin/minewatch train --config configs/train/satellite-polish.yaml --out runs/satellite
	rm -f runs/satellite/previous.onnx
	if [ -f models/minewatch-satellite.onnx ]; then cp models/minewatch-satellite.onnx runs/satellite/previous.onnx; fi
	$(VENV)/bin/minewatch export runs/satellite/best.pt -o models/minewatch-satellite.onnx --weights-out models/minewatch-satellite.pt
	$(VENV)/bin/minewatch card runs/satellite models/minewatch-satellite.onnx \
		$$(test -f runs/satellite/previous.onnx && echo --previous runs/satellite/previous.onnx)

models: model model-satellite

bench: $(STAMP)
	$(PY) bench/run_all.py --full --write BENCHMARKS.md

bench-quick: $(STAMP)
	$(PY) bench/run_all.py --quick

bench-many: $(STAMP)
	$(PY) bench/bench_many.py --count 16 --size 1600 --runs 3 --write BENCHMARKS.md

clean:
	rm -rf demo-out runs .pytest_cache
