# Every target creates .venv on first use; `make demo` and `make test` need nothing installed
# beforehand but Python 3.11 (and root or sudo for the Fashion-MNIST Debian package). `make test`
# runs the lint (`make lint`: ruff, configured in pyproject.toml) before the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: demo lint test bench data clean-runs

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

data:
	@if [ -f $(FASHION) ] || ls input/FashionMNIST/raw/train-images-idx3-ubyte* >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: found"; \
	else \
	  echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

demo: $(STAMP) data
	$(PY) code/demo.py

lint: $(STAMP)
	$(PY) -m ruff check code tests bench

test: $(STAMP) lint data
	$(PY) -m pytest -q

bench: $(STAMP) data
	$(PY) bench/run_all.py

clean-runs:
	rm -rf mlruns mlflow.db mlflow.db.lock
