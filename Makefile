# The commands of the README: `make demo`, `make test` and, on a CUDA machine, `make gpu-check`.
# All create .venv with the pinned requirements on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   := data/demo

.PHONY: venv test demo gpu-check

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q tests

# The CUDA paths end to end (tools/gpu_check.py); without CUDA one line and exit 0.
gpu-check: venv
	$(PY) -m tools.gpu_check

# A synthetic dataset in the real VOC format, the baseline trained with SVF on fold 0 from a
# random ResNet-50 (config/demo_split0.yaml), then test.py; its last line is the result.
# resume=auto: a second `make demo` finds the finished run and only tests it again.
$(DEMO)/val.txt: | venv
	$(PY) -m tools.synthetic --out $(DEMO) --format voc --train 300 --val 200

demo: venv $(DEMO)/val.txt
	PYTHON=$(PY) sh train.sh demo split0 resnet50 svf resume=auto
	PYTHON=$(PY) sh test.sh demo split0 resnet50 svf
