# The one command that checks everything: formatting, vet, and every test
# with the race detector. Tests use the real services named by
# MOIM_TEST_REDIS_URL and MOIM_TEST_MYSQL_DSN (.ci/run starts them); see
# README.md.
GO ?= go

.PHONY: test fmt-check vet run

test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

run:
	$(GO) run ./server
