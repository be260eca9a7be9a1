# aiwarden — `make run` and `make test` do all their own set-up.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
# `make run` installs the package and what running it needs; the tests, lint and benchmarks
# add the test and dev extras (SDKs, validators, ruff: hundreds of MB running never needs)
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
POLICY ?= policies
# test processes (pytest-xdist): much of the suite waits on real servers and proxies, so on
# two cores three processes keep both busy (3,970 tests: 646 s, against 823 s with two; 4,188
# tests: 460 s, CPU-bound); each test file stays whole in one process (its shared proxies)
TEST_PROCS ?= 3

# The first interpreter that is Python >= 3.12: $PYTHON if set, the usual names on PATH,
# then pyenv's versions (newest first) and /usr/bin. pyenv shims that are not active fail
# the version probe and are skipped.
define find_python
for c in $${PYTHON:-} python3.13 python3.12 python3 \
         $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.*/bin/python3 2>/dev/null | sort -rV) \
         /usr/bin/python3.13 /usr/bin/python3.12 /usr/local/bin/python3.13 /usr/local/bin/python3.12; do \
  [ -n "$$c" ] || continue; \
  if "$$c" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
    echo "$$c"; exit 0; \
  fi; \
done; \
echo "no Python >= 3.12 found: install python3.12 or set PYTHON=/path/to/python3.12" >&2; exit 1
endef

.PHONY: install install-dev run test lint bench soak check clean

install: $(STAMP)

install-dev: $(DEV_STAMP)

$(STAMP): pyproject.toml
	@py=$$($(find_python)) || exit 1; \
	 if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	   rm -rf $(VENV); echo "creating $(VENV) with $$py ($$($$py -V))"; "$$py" -m venv $(VENV); \
	 fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,dev]'
	@$(PY) -m pip install -q -e '.[kerberos]' || echo "make: WARNING: gssapi did not build \
	  (it needs libkrb5-dev and a C compiler); Kerberos single sign-on and its tests are off"
	@touch $(DEV_STAMP)

run: install
	$(VENV)/bin/aiwarden check --policy $(POLICY)
	@[ -f certs/mitmproxy-ca.pem ] || $(VENV)/bin/aiwarden ca init --dir certs
	exec $(VENV)/bin/aiwarden run --policy $(POLICY) --confdir certs

# bytecode is cached for the tests even where the environment says not to: every proxy the
# tests start would compile aiwarden from source again, every test process rewrite every test
test: install-dev
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q -n $(TEST_PROCS) --dist loadfile

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-dev  # aiwarden, mitmdump and squid side by side: bench/results/latest.{json,png}
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/proxy_bench.py
	$(PY) bench/engine_bench.py
	$(PY) bench/redaction_bench.py --json bench/results/redaction.json
	$(PY) bench/personal_bench.py --json bench/results/personal_faker.json

soak: install-dev  # ten minutes of steady mixed load, memory sampled
	$(PY) bench/soak_bench.py

check: install
	$(VENV)/bin/aiwarden check --policy $(POLICY)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
