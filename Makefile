# Code generators and buf are pinned in tools/go.mod and built into .bin/.
BIN := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)

# The MySQL conformance and integration tests run against this server; each
# test creates and drops its own database. Point it elsewhere, or set it
# empty to skip them (never skipped when CI=true).
EXTAGRAM_TEST_MYSQL_DSN ?= root@tcp(127.0.0.1:3306)/
export EXTAGRAM_TEST_MYSQL_DSN

.PHONY: all tools generate check-generated lint test bench fuzz up

all: lint test

tools:
	cd tools && GOBIN=$(BIN) go install tool

generate: tools
	buf generate

# Fails when gen/ differs from what the pinned generators produce.
check-generated: generate
	@git add -N gen >/dev/null 2>&1 || true
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		git status --porcelain -- gen; echo "gen/ is not what buf generate produces"; exit 1; fi

lint: tools
	buf lint
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || { gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); exit 1; }

test:
	go test -count=1 -v ./...

# The hot paths, one testing.B each: feed pages from the store, the edge's
# page (cached and per view) and its rendering, an image read, an upload
# through the service and the store's write.
bench:
	go test -run '^$$' -bench . -benchtime 200x ./store/ ./blobsvc/ ./uploadsvc/ ./edge/ ./edge/web/ ./imaging/

# The site's HTTP performance against nginx serving the same bytes (needs
# nginx and wrk: apt-get install -y nginx wrk).
.PHONY: bench-http
bench-http:
	go run ./bench/http

# Each fuzz target for FUZZTIME; the seed corpora (f.Add and testdata/fuzz)
# also run as plain tests in make test. The upload targets run services in
# the fuzzing process, whose background goroutines (health checks,
# keepalives) make coverage noisy: minimizing every input that looks new
# would take their whole run, so they do not minimize.
FUZZTIME ?= 30s
FUZZ = go test -run '^$$' -fuzztime $(FUZZTIME)
fuzz:
	$(FUZZ) -fuzz '^FuzzParseID$$' ./internal/contract/
	$(FUZZ) -fuzz '^FuzzInspect$$' ./imaging/
	$(FUZZ) -fuzzminimizetime 0 -fuzz '^FuzzUploadForm$$' ./edge/
	$(FUZZ) -fuzzminimizetime 0 -fuzz '^FuzzUpload$$' ./uploadsvc/

up:
	go run ./cmd/extagram up
