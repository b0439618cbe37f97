# turnover — run it locally, test it, build it for Lambda.
#
#   make dev      the local stack in the foreground (API on 127.0.0.1:3000)
#   make test     everything CI runs
#   make token    a dev JWT for the local API (DOMAIN=, SCOPE=, SUB=, DOMAINS= to change it)
#   make fuzz     every fuzz target for FUZZTIME (10s) each
#   make bench    one all-options job of USERS (200) users on the local stack, measured

SHELL := /bin/bash
GO    ?= go

DOMAIN ?= niftywidgets
SCOPE  ?= office_manager
SUB    ?= 1003@$(DOMAIN)
DOMAINS ?=
USERS  ?= 200
PROFILE ?= heavy

FUNCTIONS := $(notdir $(wildcard functions/*))
TOOLS     := infra/tools
ASL_VALIDATOR := $(TOOLS)/node_modules/.bin/asl-validator

.PHONY: dev token bench bootstrap test vet unit fuzz lint-template lint-asl tools build clean

## dev: run the local stack (moto + AWS front door + HTTP API) until Ctrl-C
dev: bin/local
	bin/local dev

## token: print a signed dev JWT for the local HTTP API; DOMAINS= (comma-separated) is a
## reseller's domains claim, DOMAIN by default
token: bin/local
	@bin/local token -domain '$(DOMAIN)' -scope '$(SCOPE)' -sub '$(SUB)' -domains '$(DOMAINS)'

## bench: seed USERS users (PROFILE=heavy or light), reset them all, print calls per user,
## depth, history, payload and cost figures; the last line is JSON
bench:
	$(GO) run ./infra/bench -users $(USERS) -profile $(PROFILE)

bin/local: FORCE
	@$(GO) build -o bin/local ./infra/local

FORCE:

## test: vet, unit and integration tests (local stack included), template and ASL checks
test: vet unit lint-template lint-asl

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 25m ./...

## fuzz: search for new failing inputs, every fuzz target for FUZZTIME each. go test
## fuzzes one target per run, so each gets its own. Targets are found by name in the
## packages that declare any (go test -list over ./... would run the TestMain of the
## local-stack packages). A failing input is written to the package's testdata/fuzz/,
## where `make test` runs it from then on.
FUZZTIME ?= 10s
FUZZ_PKGS = $(shell grep -rl --include='*_test.go' '^func Fuzz' internal functions infra | xargs -r -n1 dirname | sort -u)

fuzz:
	@failed=; for pkg in $(FUZZ_PKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' ./$$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
	    $(GO) test -run='^$$' -fuzz='^'$$target'$$' -fuzztime=$(FUZZTIME) ./$$pkg || failed="$$failed $$pkg.$$target"; \
	  done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing failed:$$failed" >&2; exit 1; fi

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

## build: Lambda bootstraps for arm64 in .build/functions/<name>/bootstrap
build:
	@for f in $(FUNCTIONS); do \
	  echo "build functions/$$f"; \
	  $(MAKE) -s bootstrap FUNCTION=$$f ARTIFACTS_DIR=$(CURDIR)/.build/functions/$$f || exit 1; \
	done

# bootstrap builds one function as Lambda runs it: static (no cgo), arm64, no local
# paths, stripped, without the RPC mode the provided.al2023 runtime never uses. `sam
# build` gets here too: the template's BuildMethod is makefile, each function's folder
# has a Makefile whose build-<LogicalId> target calls this one, and samconfig.toml
# builds in the source tree so the module root is at hand.
bootstrap:
	@test -n "$(FUNCTION)" -a -n "$(ARTIFACTS_DIR)" || { echo "FUNCTION and ARTIFACTS_DIR are needed"; exit 1; }
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags='-s -w' -tags lambda.norpc \
	  -o $(ARTIFACTS_DIR)/bootstrap ./functions/$(FUNCTION)

clean:
	rm -rf bin .build .aws-sam
