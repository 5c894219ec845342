# imedge developer and release targets. CI runs .ci/run, which runs
# `make lint`'s checks, scripts/test.sh (what `make test` runs), the fuzz
# targets and scripts/vulncheck.sh; `make release-check` does not fit CI's
# time budget and is run before tagging (docs/release.md).

GO          ?= go
BIN         ?= bin/imedge
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# scripts/bench.sh flags for `make bench` (imedge, imedge batching 64 events, nginx).
BENCHFLAGS  ?= --forward-batch 64
# RELEASE_GOTOOLCHAIN and the release tools' versions.
include scripts/release.env

.PHONY: all build test lint vulncheck bench release release-check clean

all: lint test build

# -buildvcs=true records the commit (and +dirty for a modified tree) for
# `imedge version` and /status, even when GOFLAGS says -buildvcs=false.
# The version itself comes from the VERSION file, embedded at compile time.
build:
	$(GO) build -buildvcs=true -trimpath -o $(BIN) ./cmd/imedge

# The README's test command: installs the Debian packages the tests drive
# when missing (as root), then runs go test -race -count=1 ./...
test:
	scripts/test.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags releasecheck ./scripts/
	$(STATICCHECK) ./...

# Reachable known vulnerabilities under the release toolchain (fails on any).
vulncheck:
	scripts/vulncheck.sh

# Go benchmarks of the hot path, then the side-by-side benchmark script when
# present (it prints its own tables).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./receiver/ ./dedupe/ ./forward/ ./decide/ ./egress/ ./admin/ ./internal/lrutable/
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh $(BENCHFLAGS); else echo "scripts/bench.sh not present: skipped"; fi

# The release artefacts in dist/: static linux/amd64 and linux/arm64
# binaries built with $(RELEASE_GOTOOLCHAIN), their CycloneDX SBOMs, a .deb
# per architecture and SHA256SUMS (docs/release.md). Refuses unless the tag
# v$$(cat VERSION) names HEAD; ALLOW_UNTAGGED=1 builds an untagged test release.
release:
	rm -rf dist
	scripts/release.sh --out dist

# Builds the release twice (the second time at another path with an empty
# build cache), requires identical artefacts, and checks every binary and
# package (tree, unit, maintainer scripts, lintian). Minutes, not seconds.
release-check:
	$(GO) test -tags releasecheck -count=1 -timeout 40m -run '^TestReleaseCheck_' ./scripts/

clean:
	rm -rf bin dist
