# The two commands a new user runs (README): `make run` and `make test`.
# Each installs the pinned environment on first use (scripts/install.sh is idempotent).
PY := .venv/bin/python
ARGS ?=

.PHONY: install run test
install:
	@bash scripts/install.sh

run: install
	@.venv/bin/usermodel run $(ARGS)

test: install
	@$(PY) -m pytest $(ARGS)
