# Retainers developer entry points. `make run` and `make test` each do all the
# set-up they need (Debian packages, .venv, PostgreSQL and Redis), so they work
# on a fresh machine and take under a second of checking once set up.
#
#   make run                 app on http://127.0.0.1:8000 with a celery worker and beat
#   make test                ruff (lint, format), lint-imports, mypy, makemigrations --check, then pytest;
#                            extra pytest arguments: make test ARGS="-k invoices -x";
#                            RETAINERS_SKIP_CHECKS=1 make test ... skips the checks before pytest
#   make setup               only the environment (packages and .venv), for run and test
#   make lock                regenerate constraints.txt (Python 3.12)
#
# See scripts/bootstrap.sh (environment) and scripts/dev.py (services, run, test).

PYTHON_VENV := .venv/bin/python
ARGS ?=

.PHONY: run test setup lock

run:
	bash scripts/bootstrap.sh run
	$(PYTHON_VENV) scripts/dev.py run

test:
	bash scripts/bootstrap.sh test
	$(PYTHON_VENV) scripts/dev.py test $(ARGS)

setup:
	bash scripts/bootstrap.sh test

lock:
	bash scripts/bootstrap.sh lock
