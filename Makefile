# distsync's build entry points. `make test` is what CI runs (.ci/run).

GO ?= go

.PHONY: all build test ensure-servers etcd-member mod-check fmt fmt-check vet run bench bench-quick soak

all: test

# build puts the distsync command (cmd/distsync) in ./bin.
build:
	$(GO) build -o bin/distsync ./cmd/distsync

# The repository is four Go modules joined by go.work: the library (root),
# distsynctest/ (the public test kit, with etcd's server), examples/ and
# integration/ (tests and benchmark). PKGS names every package of all four.
PKGS := ./... ./distsynctest/... ./examples/... ./integration/...
MODULES := . distsynctest examples integration

# ensure-servers installs redis-server and ZooKeeper if missing (etcd runs
# embedded in the tests), then the tests start their own server processes.
test: ensure-servers fmt-check mod-check vet etcd-member
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# mod-check fails when a module's go.mod or go.sum is not tidy, or when
# `go list -m all` fails in it (each module on its own, without go.work).
mod-check:
	@for m in $(MODULES); do \
		( cd $$m && GOWORK=off $(GO) mod tidy -diff >/dev/null && GOWORK=off $(GO) list -m all >/dev/null ) \
			|| { echo "mod-check: module $$m is not tidy or its module graph does not resolve (run: cd $$m && GOWORK=off go mod tidy)"; exit 1; }; \
	done

# etcd-member compiles the etcd member the library's own tests run as a
# child process (internal/testserver), once, before the test packages start
# it in parallel.
etcd-member:
	$(GO) build -o /dev/null ./distsynctest/internal/cmd/etcd-test-member

ensure-servers:
	./scripts/ensure-servers.sh

# fmt-check fails, listing the files, when any Go file is not gofmt'd.
fmt-check:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting (run 'make fmt'):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

fmt:
	gofmt -w .

vet:
	$(GO) vet $(PKGS)

run:
	$(GO) run ./examples/quickstart

# bench runs every benchmark scenario for distsync and the reference
# libraries, interleaved over rounds, and writes BENCHMARKS.md and
# docs/benchmarks.svg (about 10 min on 2 cores). bench-quick is the short
# development run; its report goes to /tmp. BENCHFLAGS passes more flags,
# e.g. BENCHFLAGS='-only S2,S5 -rounds 3'.
bench: ensure-servers
	$(GO) run ./integration/bench $(BENCHFLAGS)

bench-quick: ensure-servers
	$(GO) run ./integration/bench -quick $(BENCHFLAGS)

# soak runs the long versions of the safety and reliability checks:
#  1. the fenced-history tests (integration/history*_test.go) of the three
#     backends, plus Redis under repeated Sentinel failovers, for DURATION
#     each, at the same time, one test process each;
#  2. then, alone on the machine (they time calls against deadlines), the
#     reliability checks in full: the fault sweep over every primitive,
#     offset, contention and cut; reuse after idle gaps; 1000 cancelled
#     acquisitions per primitive and backend; and the ZooKeeper ensemble
#     under leader kills and partitions for DURATION.
# It prints the outcome tables; the full logs stay in the directory it names.
# RACE=-race builds with the race detector (slower).
#   make soak DURATION=10m
soak: DURATION ?= 10m
soak: RACE ?=
soak: ensure-servers
	@dir=$$(mktemp -d /tmp/distsync-soak.XXXXXX); \
	$(GO) test -c $(RACE) -o $$dir/integration.test ./integration/ || exit 1; \
	echo "soak: $(DURATION) per backend, logs in $$dir"; \
	for b in Etcd Redis ZooKeeper RedisSentinel; do \
		( cd integration && DISTSYNC_SOAK=$(DURATION) $$dir/integration.test \
			-test.run "^TestHistory$$b\$$" -test.count 1 -test.timeout 0 -test.v \
			> $$dir/$$b.log 2>&1; echo $$? > $$dir/$$b.status ) & \
	done; \
	wait; \
	( cd integration && DISTSYNC_SOAK=$(DURATION) $$dir/integration.test \
		-test.run '^(TestFaultSweep|TestLifecycleReuse|TestLifecycleLeftovers|TestZooKeeperCancelLeavesNothing|TestZooKeeperEnsembleContention)$$' \
		-test.count 1 -test.timeout 0 -test.v > $$dir/Reliability.log 2>&1; echo $$? > $$dir/Reliability.status ); \
	failed=0; \
	for b in Etcd Redis ZooKeeper RedisSentinel Reliability; do \
		awk '/^=== fenced-history outcome/ {p = 1} p {print} /^$$/ {p = 0}' $$dir/$$b.log; \
		grep -E 'fault sweep|lifecycle|ensemble' $$dir/$$b.log | grep -v '^=== ' | head -60; \
		if [ "$$(cat $$dir/$$b.status)" = 0 ]; then echo "soak $$b: PASS"; \
		else echo "soak $$b: FAIL (see $$dir/$$b.log)"; grep -E -- '--- FAIL|_test.go:[0-9]+:' $$dir/$$b.log | head -20; failed=1; fi; \
	done; \
	exit $$failed
