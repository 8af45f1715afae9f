# crashdump — build, test and tool installation.
# `make test` is the whole suite; it installs every tool it needs first.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

# Semver: the release tag, else v0.0.0-dev+<commit> (.dirty when the tree is).
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty=.dirty 2>/dev/null || echo "v0.0.0-dev+$$(git describe --always --dirty=.dirty 2>/dev/null || echo unknown)")
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Pinned tool versions. MinIO and mc are AGPL: installed as separate
# binaries into ./bin, never imported, never in go.mod.
MINIO_VERSION       := v0.0.0-20260212201848-7aac2a2c5b7c
MC_VERSION          := v0.0.0-20250313080218-cf909e1063a9
STATICCHECK_VERSION := v0.8.2

TEST_TIMEOUT ?= 20m

# Fragments owned by their areas add tools (EXTRA_TOOLS) and checks run by
# `make test` (EXTRA_TESTS).
EXTRA_TOOLS :=
EXTRA_TESTS :=
-include deploy/deploy.mk
-include $(wildcard bench/*.mk)
-include test/e2e/e2e.mk
.DEFAULT_GOAL := all

PREFIX ?= /usr/local

.PHONY: all build install test unit lint tools apt-tools demo clean fmt

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/crashdump ./cmd/crashdump

## install: crashdump and its kubectl plugin name on the PATH.
install: build
	install -D -m 0755 $(BIN)/crashdump $(DESTDIR)$(PREFIX)/bin/crashdump
	ln -sf crashdump $(DESTDIR)$(PREFIX)/bin/kubectl-crashdump
	ln -sf crashdump $(DESTDIR)$(PREFIX)/bin/kubectl_complete-crashdump

## tools: everything the tests need, at pinned versions (idempotent).
tools: $(BIN)/.minio-$(MINIO_VERSION) $(BIN)/.mc-$(MC_VERSION) $(BIN)/.staticcheck-$(STATICCHECK_VERSION) apt-tools $(EXTRA_TOOLS)

$(BIN)/.minio-$(MINIO_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-trimpath $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(BIN)/.mc-$(MC_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-trimpath $(GO) install github.com/minio/mc@$(MC_VERSION)
	@touch $@

$(BIN)/.staticcheck-$(STATICCHECK_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

# gdb provides gcore, which the tests use to make real ELF cores of live
# processes. Installed from Debian when missing.
apt-tools:
	@command -v gcore >/dev/null 2>&1 || { \
	  echo "installing gdb (for gcore)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb; }

## test: the whole suite (unit + integration against a real MinIO).
test: tools
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@for t in $(EXTRA_TESTS); do $(MAKE) --no-print-directory $$t || exit 1; done

## unit: quick tests only (no MinIO, no gcore).
unit:
	$(GO) test -count=1 -short ./...

lint: $(BIN)/.staticcheck-$(STATICCHECK_VERSION)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	@# The agent is Linux-only, but the CLI and kubectl plugin must build for SREs' Macs.
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/crashdump

fmt:
	gofmt -w $$(git ls-files '*.go')

## demo: collect a real core dump into a local directory store, no cluster, no S3.
DEMO := $(CURDIR)/demo
demo: build
	@rm -rf $(DEMO) && mkdir -p $(DEMO)/dumps/prod $(DEMO)/state
	@if command -v gcore >/dev/null 2>&1; then \
	  sleep 300 & pid=$$!; gcore -o $(DEMO)/core $$pid >/dev/null 2>&1; kill $$pid; \
	  mv $(DEMO)/core.$$pid $(DEMO)/dumps/prod/coredump.1.dmp; \
	  echo "demo: wrote a real core of a sleep process (gcore) to demo/dumps/prod/coredump.1.dmp"; \
	else \
	  head -c 4000000 /dev/zero > $(DEMO)/dumps/prod/coredump.1.dmp; \
	  echo "demo: gdb not installed; wrote a 4 MB stand-in dump to demo/dumps/prod/coredump.1.dmp"; \
	fi
	$(BIN)/crashdump agent --once --log-format text --pod-source none \
	  --dump-dir $(DEMO)/dumps --state-dir $(DEMO)/state --store file://$(DEMO)/store
	@echo; echo "demo: the dump left the node directory and is now in the store:"; \
	  find $(DEMO)/dumps -type f | sed 's/^/  still on node: /'; \
	  find $(DEMO)/store -type f | sed "s|$(DEMO)/|  |"; \
	  echo; echo "demo: its manifest:"; cat $(DEMO)/store/*/*/*.json

clean:
	rm -rf $(BIN) demo

# The version the build stamps (semver; cmd/crashdump's TestVersion checks it).
.PHONY: print-version
print-version:
	@echo $(VERSION)
