# test/e2e/e2e.mk: the end-to-end targets, included by the root Makefile.
# They need root (they start containerd and a kubelet); see test/e2e/README.md.
#
#   make e2e          make release, then test/e2e/run.sh: install the agent from the
#                     release artifacts, build, bring up
#                     a real single-node Kubernetes on 127.0.0.1, run the scenarios, tear down,
#                     verify the host is clean, print a timing summary
#   make e2e-up       the same up to a running cluster (debugging); then e2e-test, e2e-status, e2e-down
#   make e2e-unit     unit tests of the harness's own programs and of test/e2e/oncall (no root,
#                     no cluster; part of make test)

E2E_RUN_SH := $(CURDIR)/test/e2e/run.sh
# The agent is installed from the release artifacts (make release: image OCI
# archive, packaged chart, the CLI from the krew archive), as a user would;
# the release builds its binaries like `make build`, so no separate build.
# The MinIO server and helm are the ones `make tools` installs (same pinned
# versions; in CI `make test` has built them already); Prometheus and
# Alertmanager are built here, once.
E2E_ENV = E2E_RELEASE_DIR=$(DIST) E2E_AGENT_IMAGE=$(IMAGE):$(IMAGE_TAG) E2E_MINIO_BIN=$(BIN)/minio E2E_MINIO_VERSION=$(MINIO_VERSION) \
  E2E_HELM_BIN=$(BIN)/helm E2E_HELM_VERSION=$(HELM_VERSION) \
  E2E_PROMETHEUS_BIN=$(BIN)/prometheus E2E_PROMETHEUS_VERSION=$(PROMTOOL_VERSION) \
  E2E_ALERTMANAGER_BIN=$(BIN)/alertmanager E2E_ALERTMANAGER_VERSION=$(ALERTMANAGER_VERSION)

# The on-call loop (issue 16) runs a real Prometheus, from the same pinned
# module as promtool, and a real Alertmanager. Both are Apache-2.0 servers,
# run as processes, never imported. Alertmanager's module leaves out its
# npm-built web UI, which `go install` needs: lib/build-alertmanager.sh.
ALERTMANAGER_VERSION := v0.35.0
E2E_TOOLS := $(BIN)/.minio-$(MINIO_VERSION) $(BIN)/.helm-$(HELM_VERSION) \
  $(BIN)/.prometheus-$(PROMTOOL_VERSION) $(BIN)/.alertmanager-$(ALERTMANAGER_VERSION)

$(BIN)/.prometheus-$(PROMTOOL_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-trimpath $(GO) install -ldflags '-s -w -X github.com/prometheus/common/version.Version=$(PROMTOOL_VERSION:v0.3%=3.%)' \
	  github.com/prometheus/prometheus/cmd/prometheus@$(PROMTOOL_VERSION)
	@touch $@

$(BIN)/.alertmanager-$(ALERTMANAGER_VERSION):
	GO=$(GO) test/e2e/lib/build-alertmanager.sh $(ALERTMANAGER_VERSION) $(BIN)
	@touch $@

.PHONY: e2e e2e-up e2e-test e2e-status e2e-down e2e-clean e2e-unit

e2e: release $(E2E_TOOLS)
	$(E2E_ENV) $(E2E_RUN_SH) all

e2e-up: release $(E2E_TOOLS)
	$(E2E_ENV) $(E2E_RUN_SH) up

e2e-test:
	$(E2E_RUN_SH) test

e2e-status:
	$(E2E_RUN_SH) status

e2e-down:
	$(E2E_RUN_SH) down

e2e-clean:
	$(E2E_RUN_SH) clean

# make test runs these too: the harness's programs and the on-call package,
# against the real helm, promtool, Prometheus and Alertmanager of ./bin.
EXTRA_TOOLS += $(BIN)/.prometheus-$(PROMTOOL_VERSION) $(BIN)/.alertmanager-$(ALERTMANAGER_VERSION)
EXTRA_TESTS += e2e-unit

e2e-unit: $(BIN)/.helm-$(HELM_VERSION) $(BIN)/.promtool-$(PROMTOOL_VERSION) $(BIN)/.prometheus-$(PROMTOOL_VERSION) $(BIN)/.alertmanager-$(ALERTMANAGER_VERSION)
	cd test/e2e && $(GO) vet ./... && $(GO) vet -tags e2e . && $(GO) test -count=1 ./cmd/... ./oncall/...
