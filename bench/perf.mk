# `make bench-perf`: the upload benchmark of issue 7 (docs/performance.md).
# The real agent (--once) against `mc cp` on the same inputs and the same
# local MinIO, alternating over BENCH_ROUNDS rounds; detection latency; idle
# footprint; claim-time evidence with the agent in a 250m cgroup (root,
# cgroups); a CPU profile of the upload path. Inputs (a real gcore of a
# 1 GiB helper, 1 GiB random, 200 × 5 MiB, a 4 GiB sparse dump; about 3.5 GB
# on disk) are generated once into bench/work/cache and reused. Results:
# bench/results.md and bench/results.json.

# Included before the Makefile's own targets: keep `all` the default goal.
bench_perf_saved_default_goal := $(.DEFAULT_GOAL)

.PHONY: bench bench-perf

bench: bench-perf

# BENCH_ROUNDS=1 is a smoke run. BENCH_SCENARIOS picks scenarios
# (core,random,many,sparse,latency,evidence,idle,backlog,profile). BENCH_PERF_FLAGS passes
# more options to bench/perf, e.g. "-quiet-wait 40m" (wait for a load
# average below 1.5 first), "-agent-flags '--part-size 16MiB'", "-strict"
# (exit 1 when a target is missed).
BENCH_ROUNDS ?= 5
BENCH_SCENARIOS ?= core,random,many,sparse,latency,evidence,idle,backlog,profile
BENCH_PERF_FLAGS ?=

## bench-perf: agent vs mc cp on real MinIO (issue 7): wall time, bytes stored, peak RSS, CPU; latency; idle footprint.
bench-perf: build apt-tools $(BIN)/.minio-$(MINIO_VERSION) $(BIN)/.mc-$(MC_VERSION)
	$(GO) run ./bench/perf -crashdump $(BIN)/crashdump -minio $(BIN)/minio -mc $(BIN)/mc \
	  -minio-version $(MINIO_VERSION) -mc-version $(MC_VERSION) \
	  -rounds $(BENCH_ROUNDS) -scenarios $(BENCH_SCENARIOS) $(BENCH_PERF_FLAGS)

.DEFAULT_GOAL := $(bench_perf_saved_default_goal)
