# Every target creates the virtual environment first (pinned versions from pyproject.toml).
PY := .venv/bin/python
ARGS ?=
# Optional extras of pyproject.toml installed with the test ones: `make setup EXTRAS=cuda12` for
# NVIDIA GPUs (jax's CUDA 12 plugin at the pinned jax version). Each set of extras has its own stamp,
# so a GPU install after a CPU one is not skipped; without EXTRAS the stamp is .venv/installed.
EXTRAS ?=
comma := ,
INSTALLED := .venv/installed$(if $(EXTRAS),-$(subst $(comma),-,$(EXTRAS)))

.PHONY: setup demo test test-heavy test-all figures report bench data clean

$(INSTALLED): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e ".[test$(if $(EXTRAS),$(comma)$(EXTRAS))]"
	touch $@

setup: $(INSTALLED)

# The embedded default: EXPO and the imitation-only policy on Lift (grid "demo": 2 seeds, mini
# scale, 10k online steps, 40 evaluation episodes at 0, 5k and 10k); the Lift dataset is generated
# on first use. Finished runs are skipped.
# Tables 1-2 come from the code, not from the runs: written first so that the report shows them.
demo: setup
	$(PY) experiments/launch.py figure=demo $(ARGS)
	$(PY) -m analysis.tables --out figures
	$(PY) -m analysis.figures --results results --out figures

# The default suite. The heavier end-to-end checks (marker slow: a SIGKILLed run resumed, runs
# interrupted and resumed to the same CSVs, a seed group resumed, the persistent compilation cache,
# a local grid through submitit, the figure pictures; marker slurm: a real single-node SLURM) run
# with `make test-heavy`; CI runs both.
# Two worker processes (pytest-xdist): every test keeps its own temporary folders and compilation
# cache, so the default suite runs in either order; the heavy checks stay in one process (SLURM).
test: setup
	$(PY) -m pytest -q -n 2 -m "not slow and not slurm"

# The canary's learning tests (marker canary: every method on Pendulum-v1, tests/test_canary.py) run
# first, two at a time: each is one process training its method's 3 seeds.
test-heavy: setup
	$(PY) -m pytest -q -n 2 -m canary
	$(PY) -m pytest -q -m "(slow or slurm) and not canary"

test-all: setup
	$(PY) -m pytest -q

# Figures, Tables 1-2 and figures/REPORT.md from results/ only (tables first: the report shows them).
figures: setup
	$(PY) -m analysis.tables --out figures
	$(PY) -m analysis.figures --results results --out figures

# figures, then the README's result tables (the claims table, the scripted experts' success rates)
# rewritten from the committed files under results/ (analysis/readme.py; a test checks they agree).
report: figures
	$(PY) -m analysis.readme --results results --readme README.md

bench: setup
	$(PY) -m expo.bench

data: setup
	$(PY) -m expo.data generate lift

clean:
	rm -rf figures .pytest_cache
