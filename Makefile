# Every target builds .venv itself from the hash-locked requirements, so a fresh clone needs
# nothing but python3 (3.11) and make.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: venv test lint unit demo bench clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy models tasks flows app

unit: $(STAMP)
	$(VENV)/bin/pytest -q -n 2

test: lint unit

demo: $(STAMP)
	$(VENV)/bin/rogatory demo

bench: $(STAMP)
	$(PY) -m benchmarks.run

lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
