# distsync's build entry points. `make test` is what CI runs (.ci/run).

GO ?= go

.PHONY: all test ensure-servers fmt fmt-check vet run bench

all: test

# ensure-servers installs redis-server and ZooKeeper if missing (etcd runs
# embedded in the tests), then the tests start their own server processes.
test: ensure-servers fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...

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
	$(GO) vet ./...

run:
	$(GO) run ./examples/quickstart

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./integration/
