# deploy/deploy.mk: shipping crashdump (included by the root Makefile).
#
#   make release      everything a release ships, into dist/, without Docker:
#                     krew archives and manifest, packaged chart, multi-arch
#                     OCI image archive, SHA256SUMS (deploy/release)
#   make image        multi-arch image (linux/amd64, linux/arm64) with docker buildx
#   make image-push   the same, pushed to $(IMAGE):$(IMAGE_TAG)
#   make manifests    regenerate deploy/manifests/*.yaml and deploy/alerts/crashdump-rules.yaml from the chart
#   make docs         regenerate docs/configuration.md from the flag definitions
#   make deploy-test  helm lint (default, MinIO, IRSA values) and the promtool rule tests (part of make test)
#
# helm and promtool are built from source at pinned versions into ./bin by
# `make tools`, like MinIO and mc.

HELM_VERSION     := v3.22.0
PROMTOOL_VERSION := v0.316.0
HELM             := $(BIN)/helm
PROMTOOL         := $(BIN)/promtool

# `helm template` and `helm lint` assume the Kubernetes version stamped into
# the binary (1.20 when built without it): stamp the version of the
# Kubernetes API types we validate against (client-go v0.37 -> 1.37).
HELM_K8S_MINOR := 37
HELM_LDFLAGS   := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

IMAGE           ?= ghcr.io/crashdump-io/crashdump
IMAGE_TAG       ?= $(subst +,-,$(VERSION))
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# Without a push, a multi-platform build can only be exported: an OCI
# archive (load it with `docker load`, `ctr images import` or skopeo).
IMAGE_OUTPUT    ?= type=oci,dest=$(BIN)/crashdump-image.oci.tar

CHART := deploy/helm/crashdump

EXTRA_TOOLS += $(BIN)/.helm-$(HELM_VERSION) $(BIN)/.promtool-$(PROMTOOL_VERSION)
EXTRA_TESTS += deploy-test

.PHONY: image image-push release manifests docs deploy-test helm-lint rules-test

DIST              := $(CURDIR)/dist
RELEASE_PLATFORMS ?= linux/amd64,linux/arm64,darwin/amd64,darwin/arm64

$(BIN)/.helm-$(HELM_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-trimpath $(GO) install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

$(BIN)/.promtool-$(PROMTOOL_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS=-trimpath $(GO) install -ldflags '-s -w' github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	@touch $@

## image: the agent image for linux/amd64 and linux/arm64 (needs docker buildx and a running engine).
image:
	docker buildx build --platform $(IMAGE_PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	  -t $(IMAGE):$(IMAGE_TAG) --output '$(IMAGE_OUTPUT)' .

image-push:
	docker buildx build --platform $(IMAGE_PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	  -t $(IMAGE):$(IMAGE_TAG) --push .

## release: dist/ = krew archives + manifest, chart, OCI image archive, SHA256SUMS (no Docker; docs/install.md).
# The chart version is VERSION without its v; the chart's appVersion (its
# default image tag) is IMAGE_TAG, the tag inside the image archive.
release: $(BIN)/.helm-$(HELM_VERSION)
	rm -rf $(DIST)
	$(GO) run ./deploy/release --version '$(VERSION)' --commit '$(COMMIT)' --out $(DIST) --helm $(HELM) --go $(GO) \
	  --platforms $(RELEASE_PLATFORMS) --image-platforms $(IMAGE_PLATFORMS) --image $(IMAGE) --image-tag '$(IMAGE_TAG)'
	@cd $(DIST) && sha256sum -c --quiet SHA256SUMS && ls -l $(DIST)

## manifests: plain manifests and the Prometheus rule file, rendered from the chart (commit them).
manifests: $(BIN)/.helm-$(HELM_VERSION)
	$(GO) test ./deploy -run '^TestGeneratedFilesUpToDate$$' -count=1 -args -update

## docs: docs/configuration.md from the flag definitions (commit it).
docs:
	$(GO) run ./cmd/crashdump gen-docs -o docs/configuration.md

## deploy-test: helm lint and the alert rule unit tests (the chart's Go tests run in go test ./...).
deploy-test: helm-lint rules-test
	@echo "helm template (default values): $$($(HELM) template crashdump $(CHART) --namespace crashdump | wc -c) bytes"

helm-lint: $(BIN)/.helm-$(HELM_VERSION)
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/examples/values-minio.yaml
	$(HELM) lint --strict $(CHART) -f $(CHART)/examples/values-irsa.yaml

rules-test: $(BIN)/.promtool-$(PROMTOOL_VERSION)
	$(PROMTOOL) check rules deploy/alerts/crashdump-rules.yaml
	$(PROMTOOL) test rules deploy/alerts/crashdump-rules_test.yaml
