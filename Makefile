# One command sets up and runs each job: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
OUT ?= outputs
MODEL ?= auto
LAB_PORT ?= 8888
LAB_BROWSER ?= no

.PHONY: install demo lab lint test test-slow bench bench-gpu lock weights weights-random clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# The main job: execute every tutorial notebook headless and publish outputs/index.html.
demo: install
	$(BIN)/python -m carlib gallery --out $(OUT) --model $(MODEL)

# JupyterLab on notebooks/, opened on the explorer (08), offline; `make lab LAB_BROWSER=yes` opens a browser.
# The kernel is this virtualenv's python3 (ipykernel's spec in .venv/share/jupyter, preferred over the user's).
lab: install
	@echo "JupyterLab on notebooks/ (the explorer: 08_explorer.ipynb, then Run > Run All Cells). Open the URL printed below."
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.port=$(LAB_PORT) \
	  --LabApp.default_url=/lab/tree/08_explorer.ipynb $(if $(filter yes,$(LAB_BROWSER)),,--no-browser) \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --LabApp.news_url=None \
	  --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root)

# Lint and types on carlib/ (settings in pyproject.toml): ruff's rules, ruff's formatting, mypy.
lint: install
	$(BIN)/ruff check carlib
	$(BIN)/ruff format --check carlib
	$(BIN)/mypy carlib

# The whole suite: lint and types first (fail fast), unit tests, then nbval over every notebook
# (stored outputs must reproduce).
test: install lint
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

test-slow: install
	$(BIN)/python -m pytest -m slow

bench: install
	$(BIN)/python benchmarks/bench_cam.py
	$(BIN)/python benchmarks/bench_car.py --grid
	$(BIN)/python benchmarks/bench_eval.py
	$(BIN)/python benchmarks/bench_photo.py
	$(BIN)/python benchmarks/bench_video.py
	$(BIN)/python benchmarks/bench_vocabulary.py
	$(BIN)/python benchmarks/bench_methods.py
	$(BIN)/python benchmarks/bench_families.py

# GPU figures in one run (CaR fp32/fp16, eval throughput, the 12 MP photo); without a GPU it says so and exits 0.
bench-gpu: install
	$(BIN)/python benchmarks/bench_gpu.py

lock: install
	(sed -n '1,3p' requirements.lock; $(BIN)/python -m pip freeze --all --exclude-editable | grep -vE '^(carlib|pip)==') > requirements.lock.new
	mv requirements.lock.new requirements.lock

weights: install
	$(BIN)/python -m carlib weights --model ViT-B-16 --pretrained openai
	$(BIN)/python -m carlib weights --model ViT-L-14 --pretrained openai

# Seeded RANDOM weights where the downloads go: runs the real-CLIP path offline (results mean nothing).
weights-random: install
	$(BIN)/python -m carlib weights --model ViT-B-16 --pretrained openai --random-seed 0
	$(BIN)/python -m carlib weights --model ViT-L-14 --pretrained openai --random-seed 0

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
