# imedge developer targets. CI runs .ci/run, which does what `make lint test`
# does after installing the tools the tests need.

GO          ?= go
BIN         ?= bin/imedge
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# scripts/bench.sh flags for `make bench` (imedge, imedge batching 64 events, nginx).
BENCHFLAGS  ?= --forward-batch 64

.PHONY: all build test lint bench clean

all: lint test build

# -buildvcs=true records the commit (and +dirty for a modified tree) for
# `imedge version` and /status, even when GOFLAGS says -buildvcs=false.
build:
	$(GO) build -buildvcs=true -trimpath -o $(BIN) ./cmd/imedge

# The README's test command.
test:
	$(GO) test -race -count=1 ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Go benchmarks of the hot path, then the side-by-side benchmark script when
# present (it prints its own tables).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./receiver/ ./dedupe/ ./forward/
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh $(BENCHFLAGS); else echo "scripts/bench.sh not present: skipped"; fi

clean:
	rm -rf bin
