# The few targets a newcomer needs. Everything installs into .venv; nothing is needed but python3 (3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SPEC ?= examples/patching.yaml

.PHONY: setup demo test unit integration infra lint typecheck check synth cfn-lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## A whole simulated rollout on the local twin (no AWS account): waves, bake time, budget, summary, HTML report.
## fleetwave's exit code tells how the rollout ended (0, 1 or 2); the demo target fails only on errors (64+).
demo: setup
	@mkdir -p reports
	$(BIN)/fleetwave simulate $(DEMO_SPEC) --fleet 60 --seed 7 --fail-rate 0.02 --report reports/demo.html; \
	code=$$?; if [ $$code -ge 3 ]; then exit $$code; fi

## Lint, type-check, then every test tier (unit, integration on moto + simulator, infra synthesis).
test: setup check
	$(BIN)/python -m pytest -n 2 --durations=15

check: lint typecheck

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy functions local stacks app.py

unit: setup
	$(BIN)/python -m pytest tests/unit -q

integration: setup
	$(BIN)/python -m pytest tests/integration -q -n 2

infra: setup
	$(BIN)/python -m pytest tests/infra -q

## Synthesize the CloudFormation template with the pinned CDK CLI (needs Node.js; no AWS account).
synth: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" npx --yes aws-cdk@2.1148.1 synth --quiet

## Lint the CloudFormation template synthesized from cdk.json (no CDK CLI, no layer build): no error may remain.
## W3005 is ignored: CDK adds DependsOn on each role's default policy, which cfn-lint reports as redundant.
cfn-lint: setup
	$(BIN)/python -m stacks.offline cdk.out.offline > /dev/null
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out.offline/fleetwave.template.json

bench: setup
	$(BIN)/python benchmarks/rollout_cost.py

clean:
	rm -rf $(VENV) cdk.out cdk.out.offline reports .pytest_cache .mypy_cache .ruff_cache
