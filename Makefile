# turnover — run it locally, test it, build it for Lambda.
#
#   make dev      the local stack in the foreground (API on 127.0.0.1:3000)
#   make test     everything CI runs
#   make token    a dev JWT for the local API (DOMAIN=, SCOPE=, SUB= to change it)

SHELL := /bin/bash
GO    ?= go

DOMAIN ?= niftywidgets
SCOPE  ?= office_manager
SUB    ?= 1003@$(DOMAIN)

FUNCTIONS := api reset finalize
TOOLS     := infra/tools
ASL_VALIDATOR := $(TOOLS)/node_modules/.bin/asl-validator

.PHONY: dev token test vet unit lint-template lint-asl tools build clean

## dev: run the local stack (moto + AWS front door + HTTP API) until Ctrl-C
dev: bin/local
	bin/local dev

## token: print a signed dev JWT for the local HTTP API
token: bin/local
	@bin/local token -domain '$(DOMAIN)' -scope '$(SCOPE)' -sub '$(SUB)'

bin/local: FORCE
	@$(GO) build -o bin/local ./infra/local

FORCE:

## test: vet, unit and integration tests (local stack included), template and ASL checks
test: vet unit lint-template lint-asl

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

lint-template:
	@command -v cfn-lint >/dev/null || { echo "cfn-lint is missing: pip install cfn-lint" >&2; exit 1; }
	cfn-lint template.yaml

## lint-asl: validate the state machine as deployed (substitutions resolved) with asl-validator
lint-asl: $(ASL_VALIDATOR) bin/local
	bin/local render-asl -o .build/asl
	$(ASL_VALIDATOR) --json-path .build/asl/reset-users.asl.json

tools: $(ASL_VALIDATOR)

$(ASL_VALIDATOR): $(TOOLS)/package.json $(TOOLS)/package-lock.json
	npm ci --prefix $(TOOLS) --no-audit --no-fund --loglevel=error
	@touch $@

## build: Lambda bootstraps for arm64, as sam build makes them
build:
	@for f in $(FUNCTIONS); do \
	  echo "build functions/$$f"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags='-s -w' -tags lambda.norpc \
	    -o .build/functions/$$f/bootstrap ./functions/$$f || exit 1; \
	done

clean:
	rm -rf bin .build .aws-sam
