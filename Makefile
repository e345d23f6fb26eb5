# The two commands of the README:
#   make run    start tierd on its built-in default and drive a real workload
#   make test   run the test suite
# Both set up everything first: Debian packages (liburing-dev, fio) when
# missing and running as root, then a virtualenv in .venv with tierd installed.

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.tierd-installed
PYTEST_ARGS ?=

.PHONY: run test deps bench clean help
help:
	@echo "make run    start tierd on its built-in default and drive a workload"
	@echo "make test   install what is needed and run the tests"
	@echo "make bench  fio-style benchmarks against fio (perf/jobs/issue2-bench.fio)"

deps:
	@missing=""; \
	[ -f /usr/include/liburing.h ] || missing="$$missing liburing-dev"; \
	command -v fio >/dev/null 2>&1 || missing="$$missing fio"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	$(PYTHON) -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))' \
	    || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "tierd needs:$$missing. Install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "tierd needs Python >= 3.11 (found $$($(PYTHON) --version))" >&2; exit 1; }

$(STAMP): pyproject.toml setup.py native/build_native.py native/tierd_native.c native/tierd_native.h
	@$(MAKE) --no-print-directory deps
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tierd demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/tierd-perf run perf/jobs/issue2-bench.fio --compare-fio --repeat 3

clean:
	rm -rf $(VENV) build *.egg-info daemon/tierd_daemon/_native*.so
