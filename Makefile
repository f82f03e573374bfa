# The README's commands. `make run` serves the demo on http://127.0.0.1:8000; `make test` builds
# and runs every test, installing what the tests need (virtualenv from PyPI, nginx from Debian),
# then fuzzes each codec for 10 s (`make fuzz`, installing cargo-fuzz from crates.io if missing).
# A CPython by version: pyenv's copy if it has one, else pythonX.Y on PATH.
pyfor = $(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)) $(shell command -v python$(1)))
PYTHON ?= $(call pyfor,3.11)
VENV ?= .venv
BIN := $(VENV)/bin
SMOKE_VERSIONS ?= 3.10 3.12 3.13
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PYDIRS := $(wildcard python tests bench examples)

.PHONY: run test build venv lint test-rust test-py smoke bench clean fmt sysdeps fuzz fuzz-smoke docs wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps: requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.deps

# The development build carries the integration tests' hooks (feature test-hooks: a forced
# panic, inert unless FERRULE_TEST_PANIC is set); wheels (`smoke`, `make bench`) never do.
build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release -q -F pyo3/extension-module -F test-hooks

run: build
	$(BIN)/ferrule --bind 127.0.0.1:8000 $(APP)

test: build lint sysdeps test-rust test-py smoke fuzz

# Debian packages the tests run: nginx in front of Ferrule in tests/test_nginx.py (uwsgi, SCGI,
# FastCGI), curl as a client over TLS and HTTP/2.
sysdeps:
	@{ command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; } && command -v curl >/dev/null 2>&1 || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx-light curl; }

lint: venv
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -q -- -D warnings
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/ruff format --check $(PYDIRS)

test-rust:
	PYO3_PYTHON=$(abspath $(BIN)/python) cargo nextest run --workspace --release --no-fail-fast 2>/dev/null \
		|| PYO3_PYTHON=$(abspath $(BIN)/python) cargo test --workspace --release

test-py: build
	$(BIN)/python -m pytest -q -n 2 tests

# One abi3 wheel, installed into a fresh virtualenv of each other supported Python, serving Flask.
smoke: venv
	rm -rf target/wheels
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin build --release -q -o target/wheels
	set -e; $(foreach v,$(SMOKE_VERSIONS),\
		test -n "$(call pyfor,$(v))" || { echo "Python $(v) not found (pyenv install $(v))"; exit 1; }; \
		rm -rf target/smoke-$(v) && $(call pyfor,$(v)) -m venv target/smoke-$(v); \
		env PATH=/usr/bin:/bin target/smoke-$(v)/bin/python -m pip install -q target/wheels/*.whl flask requests pytest; \
		env PATH=/usr/bin:/bin target/smoke-$(v)/bin/python tests/smoke.py;)

# Wheels anyone can install without Rust: one abi3 wheel (CPython 3.10+) for manylinux2014 (glibc
# 2.17 and later), fat LTO, linked by zig (ziglang from PyPI) so that it runs on older systems
# than this one, and the sdist (builds with `pip install` where Rust is). Another target where
# rustup has it (`rustup target add aarch64-unknown-linux-gnu`):
# `make wheels TARGET=aarch64-unknown-linux-gnu`.
TARGET ?= x86_64-unknown-linux-gnu
wheels: venv
	$(BIN)/python -m pip install -q "ziglang>=0.11"
	rm -rf target/dist
	PATH=$(abspath $(BIN)):$$PATH VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin build --profile dist --zig --compatibility manylinux2014 \
		--target $(TARGET) -q -o target/dist
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin sdist -o target/dist
	ls target/dist

bench:
	$(MAKE) -C bench

# Every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each, on the stable toolchain: RUSTC_BOOTSTRAP=1
# unlocks the nightly flags of cargo-fuzz's address sanitizer. cargo-fuzz is installed from
# crates.io when `cargo fuzz` is missing. A crash, a target that does not build or an empty
# target list fails the step (and `make test`); the crash's input is left in
# fuzz/artifacts/<target>/. FUZZ_TARGETS="uwsgi scgi" runs only those; `make fuzz-smoke` is
# the same for 20 seconds a target.
FUZZ_SECONDS ?= 10
fuzz:
	cargo fuzz --help >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	cd fuzz && export RUSTC_BOOTSTRAP=1 && targets="$${FUZZ_TARGETS:-$$(cargo fuzz list)}" && test -n "$$targets" && \
		cargo fuzz build && \
		for t in $$targets; do \
			echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
			cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 >/dev/null 2>target/fuzz-$$t.log \
				|| { tail -n 40 target/fuzz-$$t.log; echo "fuzz: $$t failed (input in fuzz/artifacts/$$t/)"; exit 1; }; \
		done

fuzz-smoke: FUZZ_SECONDS = 20
fuzz-smoke: fuzz

# The reference pages generated from the code (tests/test_docs.py fails when they are stale).
docs: build
	cd /tmp && $(abspath $(BIN))/python -m ferrule --print-reference options > $(CURDIR)/docs/options.md
	cd /tmp && $(abspath $(BIN))/python -m ferrule --print-reference gunicorn > $(CURDIR)/docs/gunicorn.md

fmt:
	cargo fmt --all
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/ruff check --fix $(PYDIRS)

clean:
	rm -rf $(VENV) target
