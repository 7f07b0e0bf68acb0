# Two commands: `make run` (install from the lock, start the local stack) and `make test` (install, run every test).
SHELL := /bin/bash
PYTHON ?= python3
LAMBDA_PYTHON ?= python3.13
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
# Bytecode at install: imports then read .pyc instead of compiling (the handler imports in 0.44 s, not 1.2 s).
export UV_COMPILE_BYTECODE ?= 1

RUNTIME_ENV := .tools/venv-runtime
LAKE_ENV := .tools/venv-lake
SYNTHETIC_ENV := .tools/venv-synthetic

.PHONY: run test install runtime-smoke bench requirements deploy build-GatewayFunction build-StreamFunction \
	build-AnalyticsFunction build-UsageExportFunction build-LakeMaintenanceFunction build-RankingsFunction \
	build-SyntheticFunction build-SyntheticWorkerFunction

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) sync --frozen --extra local --extra lake --extra synthetic --extra flows --python $(PYTHON)
	@$(MAKE) --no-print-directory snippets-node

# The Node snippets' pinned `openai` package (docs/snippets/node/package-lock.json), installed again only when
# the lock changed. Without npm the Node snippets' tests skip (under CI they fail).
SNIPPETS_NODE := docs/snippets/node
.PHONY: snippets-node
snippets-node:
	@if ! command -v npm >/dev/null 2>&1; then \
		echo "npm not found: the Node snippets' tests will skip (apt-get install -y nodejs npm)"; \
	elif [ ! -f $(SNIPPETS_NODE)/node_modules/.package-lock.json ] \
			|| [ $(SNIPPETS_NODE)/package-lock.json -nt $(SNIPPETS_NODE)/node_modules/.package-lock.json ]; then \
		npm ci --prefix $(SNIPPETS_NODE) --no-audit --no-fund --loglevel=error; \
	fi

run: install
	$(UV) run --frozen --no-sync python -m infra.local

test: install runtime-smoke
	UV=$(UV) $(UV) run --frozen --no-sync pytest

# What Lambda runs, from the runtime dependencies alone (no dev group, no extras: the `local` extra's moto
# brings jsonschema and more along): a run-time import declared only for development fails here (~2 s).
# Then the lake's functions, from the runtime dependencies and the `lake` extra; then the synthetic functions,
# from the runtime dependencies and the `synthetic` extra (pyarrow without DuckDB).
runtime-smoke: $(UV)
	UV_PROJECT_ENVIRONMENT=$(RUNTIME_ENV) $(UV) sync --frozen --no-dev --python $(PYTHON) --quiet
	UV_PROJECT_ENVIRONMENT=$(RUNTIME_ENV) $(UV) run --frozen --no-sync python -m tests.runtime_smoke
	UV_PROJECT_ENVIRONMENT=$(LAKE_ENV) $(UV) sync --frozen --no-dev --extra lake --python $(PYTHON) --quiet
	UV_PROJECT_ENVIRONMENT=$(LAKE_ENV) $(UV) run --frozen --no-sync python -m tests.runtime_smoke --lake
	UV_PROJECT_ENVIRONMENT=$(SYNTHETIC_ENV) $(UV) sync --frozen --no-dev --extra synthetic --python $(PYTHON) --quiet
	UV_PROJECT_ENVIRONMENT=$(SYNTHETIC_ENV) $(UV) run --frozen --no-sync python -m tests.runtime_smoke --synthetic

bench: install  # needs wrk (apt-get install -y wrk) and ../shared/bench/fake_upstream.py, fake_stream_upstream.py
	$(UV) run --frozen --no-sync python -m benchmarks.gateway
	$(UV) run --frozen --no-sync python -m benchmarks.parts
	$(UV) run --frozen --no-sync python -m benchmarks.routing
	$(UV) run --frozen --no-sync python -m benchmarks.streaming

.PHONY: bench-metrics
bench-metrics: install  # what /metrics costs: two stacks, metrics on (scraped each second) and off, alternated windows (~2 min)
	$(UV) run --frozen --no-sync python -m benchmarks.gateway --metrics

.PHONY: bench-lake
bench-lake: install  # export lag, lake write throughput, analytics over 10 M records vs DuckDB direct (~3 min)
	$(UV) run --frozen --no-sync python -m benchmarks.lake

.PHONY: bench-rankings
bench-rankings: install  # one day of 10 M records: the flow's aggregation vs DuckDB direct, the whole flow, Athena (~8 min)
	$(UV) run --frozen --no-sync python -m benchmarks.rankings

.PHONY: bench-synthetic
bench-synthetic: install  # the synthetic engine: cells/s through the gateway at 50 ms and 64 parallel, CPU a cell, memory over 100k rows (~2 min)
	$(UV) run --frozen --no-sync python -m benchmarks.synthetic

.PHONY: reliability
reliability: install  # the trust failures of issue 9 against the local stack: loopback only, about a minute
	$(UV) run --frozen --no-sync python -m benchmarks.reliability

# The Lambda package's requirements, derived from the lock (a test checks they agree).
requirements: $(UV)
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --format requirements-txt -o requirements.txt >/dev/null
	$(UV) export --frozen --no-dev --extra lake --no-emit-project --no-hashes --format requirements-txt \
		-o requirements-lake.txt >/dev/null
	$(UV) export --frozen --no-dev --extra synthetic --no-emit-project --no-hashes --format requirements-txt \
		-o requirements-synthetic.txt >/dev/null

deploy: requirements
	sam build && sam deploy --guided

# `sam build` calls these (BuildMethod: makefile): only our code and the locked runtime requirements,
# as manylinux wheels for the Lambda runtime whatever the local Python is (python3.13 runs on Amazon Linux 2023,
# glibc 2.34: manylinux_2_28 wheels too, the only ones pyarrow 26 and duckdb 2 publish).
# The lake's functions (analytics, export, maintenance) take requirements-lake.txt: the same plus duckdb and pyarrow;
# the synthetic ones (routes, worker) requirements-synthetic.txt: the same plus pyarrow, faker and jinja2, less
# pyarrow's Flight RPC, C++ headers, sources and tests (nothing imports them; pyarrow's lib links none: ~43 MB).
# A package is refused past Lambda's 250 MB unzipped here, at build time, rather than by CloudFormation.
build-GatewayFunction build-StreamFunction: REQUIREMENTS = requirements.txt
build-AnalyticsFunction build-UsageExportFunction build-LakeMaintenanceFunction build-RankingsFunction: REQUIREMENTS = requirements-lake.txt
build-SyntheticFunction build-SyntheticWorkerFunction: REQUIREMENTS = requirements-synthetic.txt
build-SyntheticFunction build-SyntheticWorkerFunction: PRUNE = pyarrow/include pyarrow/src pyarrow/tests \
	pyarrow/libarrow_flight.so.* pyarrow/_flight.* pyarrow/libarrow_python_flight.so* pyarrow/flight.py \
	pyarrow/_pyarrow_cpp_tests.*.so
build-GatewayFunction build-StreamFunction build-AnalyticsFunction build-UsageExportFunction build-LakeMaintenanceFunction \
		build-RankingsFunction build-SyntheticFunction build-SyntheticWorkerFunction:
	cp -r functions shared run.sh "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -prune -exec rm -rf {} +
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS) --target "$(ARTIFACTS_DIR)" \
		--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --implementation cp \
		--python-version 3.13 --only-binary=:all: --no-compile
	cd "$(ARTIFACTS_DIR)" && rm -rf $(PRUNE)
	# /var/task is read-only: without shipped bytecode every cold start compiles every module (~0.8 s here).
	# Bytecode is per Python version, so it takes the runtime's (template.yaml: python3.13).
	$(LAMBDA_PYTHON) -m compileall -q -j 0 "$(ARTIFACTS_DIR)" 2>/dev/null \
		|| UV_PYTHON_DOWNLOADS=automatic $(UV) run --no-project --python 3.13 python -m compileall -q -j 0 "$(ARTIFACTS_DIR)" \
		|| echo "warning: no Python 3.13 to compile bytecode with: the package ships without it (slower cold starts)"
	@bytes=$$(du -sb "$(ARTIFACTS_DIR)" | cut -f1); if [ "$$bytes" -ge 262144000 ]; then \
		echo "error: $@: $$((bytes / 1048576)) MB unzipped, past Lambda's 250 MB" >&2; exit 1; fi

.PHONY: bench-governance
bench-governance: install  # two gateway processes on one local stack: RPM 60 under 500 req/s, a $1 limit under 200 calls, what every restriction adds (~3 min)
	$(UV) run --frozen --no-sync python -m benchmarks.governance

.PHONY: bench-dashboard
bench-dashboard: install  # the dashboard in headless Chromium (apt-get install -y chromium) over 1 M lake records: first paint, each view (~2 min)
	$(UV) run --frozen --no-sync python -m benchmarks.dashboard
