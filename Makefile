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

# check runs everything against the services named by MOIM_TEST_*.
check: fmt-check vet
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v /scripts/chaos)
	# The chaos scenarios (docs/BENCHMARKS.md, "Chaos under load") alone:
	# they measure delivery p99 and share the host with nothing else.
	$(GO) test -race -count=1 -timeout 15m ./scripts/chaos
	# The frame parser and the client protocol (against a live node) fuzzed;
	# their seeds ran above. Budgets count inputs, not seconds: Go 1.26 can
	# fail a -fuzztime duration as it ends (go.dev/issue/75804).
	$(GO) test -run '^$$' -fuzz '^FuzzParseFrame$$' -fuzztime 100000x ./hub
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime 100000x ./api
	$(GO) test -run '^$$' -fuzz '^FuzzClientMessages$$' -fuzztime 3000x ./server
	# The two passes run side by side: each is one test process that mostly
	# waits on sockets and timers. go test prints a package's output when
	# it ends, so their reports do not interleave.
	@MOIM_TEST_ENGINE=memory $(GO) test -race -count=1 -timeout 10m ./server & memory=$$!; \
	cluster=ok; \
	if [ -n "$$MOIM_TEST_REDIS_CLUSTER_URL" ]; then \
		echo "again on the single-node engine, and on the Redis Cluster at $$MOIM_TEST_REDIS_CLUSTER_URL"; \
		MOIM_TEST_REDIS_URL="$$MOIM_TEST_REDIS_CLUSTER_URL" $(GO) test -race -count=1 -timeout 10m ./server || cluster=failed; \
	fi; \
	wait $$memory && [ $$cluster = ok ]

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

run:
	$(GO) run ./server
