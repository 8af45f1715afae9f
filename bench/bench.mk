# Benchmarks: `make bench` runs every scenario. A scenario is a target that
# `bench` depends on (add `bench: bench-<name>` for yours). Benchmarks run
# real binaries against a local MinIO and report ratios against mc on the
# same machine in the same run, plus peak memory; they are never timed unit
# tests.

# This fragment is included before the Makefile's own targets: keep `all`
# the default goal.
bench_saved_default_goal := $(.DEFAULT_GOAL)

.PHONY: bench bench-ls

## bench: every benchmark scenario.
bench: bench-ls

# BENCH_LS_FLAGS passes options to bench/ls, for example
# BENCH_LS_FLAGS='-data /tmp/bench-ls-data' keeps the filled MinIO between
# runs, and '-dumps 100000 -namespaces 500' makes a bigger bucket.
BENCH_LS_FLAGS ?=

## bench-ls: `crashdump ls -n ns-042` on 20,000 dumps in 200 namespaces (issue 5: < 2 s, only that namespace's manifests read).
bench-ls: build $(BIN)/.minio-$(MINIO_VERSION) $(BIN)/.mc-$(MC_VERSION)
	$(GO) run ./bench/ls -crashdump $(BIN)/crashdump -minio $(BIN)/minio -mc $(BIN)/mc $(BENCH_LS_FLAGS)

.DEFAULT_GOAL := $(bench_saved_default_goal)
