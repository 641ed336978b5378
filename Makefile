# The one command that checks everything: formatting, vet, and every test
# with the race detector, against real services (README.md, "Tests").
GO ?= go

.PHONY: test check fmt-check vet run

# test starts the services not already named by MOIM_TEST_* (redis-server,
# MariaDB, a Redis Cluster, FerretDB), runs check, and stops them.
test:
	scripts/test.sh $(MAKE) --no-print-directory check

# The hub, sync, history and money tests run again on the single-node
# engine (no Redis; messages in SQLite) and, when one is named, on a Redis
# Cluster (scripts/redis-cluster.sh; make test starts one). A test joins
# those passes beside its declaration, `var _ = alsoOn(onMemory|onCluster,
# TestX)`, and server/passes_test.go's TestMain picks them when the
# environment names the pass; no test names live here.

# check runs everything against the services named by MOIM_TEST_*. Each
# step prints its wall time (scripts/step.sh; the breakdown is in
# README.md, "Tests"). `go vet ./...` (vet, before) covers the test files
# with every analyzer, a superset of the ones go test would run again on
# each package, hence -vet=off below.
STEP = scripts/step.sh

check: fmt-check vet
	$(STEP) test $(GO) test -race -vet=off -count=1 -timeout 30m $$($(GO) list ./... | grep -v /scripts/chaos)
	# The chaos scenarios (docs/BENCHMARKS.md, "Chaos under load") alone:
	# they measure delivery p99 and share the host with nothing else.
	$(STEP) chaos $(GO) test -race -vet=off -count=1 -timeout 15m ./scripts/chaos
	# The frame parser and the client protocol (against a live node) fuzzed;
	# their seeds ran above. Budgets count inputs, not seconds: Go 1.26 can
	# fail a -fuzztime duration as it ends (go.dev/issue/75804). The three
	# share one instrumented build of their dependencies (the build cache).
	# From an empty fuzz cache (a fresh machine) both still found new
	# coverage past 60,000 inputs, so neither budget is cut.
	$(STEP) fuzz-frame $(GO) test -vet=off -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime 100000x ./hub
	$(STEP) fuzz-decode $(GO) test -vet=off -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 100000x ./api
	$(STEP) fuzz-client $(GO) test -vet=off -run '^$$' -fuzz '^FuzzClientMessages$$' -fuzztime 3000x ./server
	# The single-node and Redis Cluster passes, side by side, from one
	# test binary (scripts/passes.sh).
	@$(STEP) passes env GO=$(GO) scripts/passes.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(STEP) vet $(GO) vet ./...

run:
	$(GO) run ./server
