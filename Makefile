# One command sets up and runs each job: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= outputs
MODEL ?= auto

.PHONY: install demo test test-slow bench lock weights clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m carlib demo --out $(OUT) --model $(MODEL)

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

bench: install
	$(BIN)/python benchmarks/bench_cam.py

lock: install
	(sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable | grep -vE '^(carlib|pip)==') > requirements.lock.new
	mv requirements.lock.new requirements.lock

weights: install
	$(BIN)/python -m carlib weights --model ViT-B-16 --pretrained openai
	$(BIN)/python -m carlib weights --model ViT-L-14 --pretrained openai

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
