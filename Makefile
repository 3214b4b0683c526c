# escalefs — build, test and measure.
GO       ?= go
BIN      ?= escalefs
# A release tag (vX.Y.Z) when one is reachable; otherwise escalefs reports
# its source's release with -dev. The commit is stamped here because
# GOFLAGS may turn off Go's own VCS stamping.
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null)
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
PREFIX   ?= /usr/local
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The test run must end well within CI's time; servers start per package.
TESTFLAGS ?= -race -count=1 -timeout 25m
# How long `make fuzz` (and so `make test`) runs each fuzz target.
FUZZTIME ?= 5s
# The packages with fuzz targets; go test fuzzes one target per run.
FUZZPKGS ?= ./crypto/ ./cache/ ./sync/proto/

.PHONY: all build test check fuzz bench demo deps install clean

all: build

## build: compile ./escalefs
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/escalefs

## test: everything CI runs — install what is missing (as root), the static checks, every test with -race, then each fuzz target
test: deps check
	$(GO) test $(TESTFLAGS) ./...
	@$(MAKE) --no-print-directory fuzz

## fuzz: run each fuzz target for $(FUZZTIME); a failing input is saved under testdata/fuzz
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh $(FUZZPKGS)

## check: gofmt, go vet and staticcheck must be clean
check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## bench: relay throughput per backend, beside cp/curl against the same server; sync end to end, beside rclone and curl (1 GiB new and edited, as chunks and whole, also over a 50 MiB/s link); the mount, beside a native directory and rclone mount; keeping versions (per file, and on a 10,000-file pull), beside versions off; delta sync of a 1 GiB file (new, copy, edit, insert), beside whole files in parts
# BenchmarkSync and BenchmarkMount run once: BenchmarkSync moves 1 GiB files
# through two relays and a 50 MiB/s link (most of a minute per step there)
# and waits most of a minute for rclone's WebDAV baseline of small files;
# BenchmarkMount writes and reads 1 GiB, makes
# 10,000 files and unpacks a tree on each of three targets.
bench:
	$(GO) test -run '^$$' -bench . -skip '^Benchmark(Sync|Mount)$$' -benchtime 3x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench '^BenchmarkSync$$' -benchtime 1x -timeout 60m ./bench/
	$(GO) test -run '^$$' -bench '^BenchmarkMount$$' -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench '^BenchmarkRelease$$' -benchtime 10000x ./versions/
	$(GO) test -run '^$$' -bench '^BenchmarkPullVersions$$' -benchtime 1x -count 2 -timeout 30m ./sync/
	$(GO) test -run '^$$' -bench '^BenchmarkDelta$$' -benchtime 1x -timeout 30m ./sync/

## demo: build escalefs; mount two nodes, alice and bob, under ./demo and keep them in step through a relay there (installs fuse3 as root when it is missing)
demo: build
	./scripts/install-test-deps.sh --demo
	./scripts/demo.sh ./$(BIN)

## deps: install the servers and tools the tests use when they are missing (Debian 12; as root, or it names what to install)
deps:
	./scripts/install-test-deps.sh

## install: install escalefs into $(PREFIX)/bin (make install PREFIX=$$HOME/.local needs no root)
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/escalefs

clean:
	rm -f $(BIN)
