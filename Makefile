# eventgate — `make help` lists the targets.
GO      ?= go
BIN     ?= bin/eventgate
PKGS    ?= ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the binary into bin/eventgate
	$(GO) build -o $(BIN) .

.PHONY: run
run: build ## Run eventgate on an SQLite file in ./data (prints the admin token on first start)
	./$(BIN) serve

.PHONY: test
test: ## Run every test
	$(GO) test -count=1 -timeout 15m $(PKGS)

.PHONY: test-compat
test-compat: build ## Run the Node client compatibility suite (test/compat) against bin/eventgate
	cd test/compat && rm -rf out && npm ci --no-audit --no-fund && EVENTGATE_BIN=$(abspath $(BIN)) node --test --test-timeout=60000

.PHONY: test-browser
test-browser: build ## Run the GraphiQL browser test (test/browser) in Debian's Chromium against bin/eventgate
	test/browser/setup.sh
	cd test/browser && rm -rf out && npm ci --no-audit --no-fund && EVENTGATE_BIN=$(abspath $(BIN)) node --test

.PHONY: ui
ui: ## Rebuild the bundled GraphiQL (ui/graphiql, npm) into server/graphiql/assets
	cd ui/graphiql && npm ci --no-audit --no-fund && npm run build

.PHONY: bench
bench: build ## Run the Go benchmarks briefly, then the load tool against bin/eventgate (BENCHMARKS.md; BENCH_ARGS=-quick for a smoke run)
	$(GO) test -run '^$$' -bench . -benchtime 200ms -benchmem $(PKGS)
	$(GO) run ./cmd/eventgate-bench -bin $(BIN) $(BENCH_ARGS)

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^ent/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: generate
generate: ## Regenerate ent, then gqlgen
	$(GO) run -mod=mod ./ent/entc.go
	$(GO) tool gqlgen generate

.PHONY: verify
verify: generate ## Prove generated code and go.mod are current
	$(GO) mod tidy
	git diff --exit-code -- . ':(exclude)data'
	@untracked=$$(git ls-files --others --exclude-standard); if [ -n "$$untracked" ]; then echo "untracked generated files:"; echo "$$untracked"; exit 1; fi
