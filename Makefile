# sockmon. `make run` starts the server with its embedded defaults (a
# development set-up: see --dev);
# `make test` runs everything CI runs.

GO       ?= go
BIN      := bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME ?= 10s

.PHONY: all build run test test-deps vet unit fuzz fuzz-short bench capacity clean uplot

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sockmon ./cmd/sockmon

# --dev: without $$SOCKMON_ADMIN_SECRET, a development admin secret is kept
# in ./data and the run prints an admin token and the URLs to try.
run: build
	$(BIN)/sockmon serve --dev

# Everything CI runs: vet, the race-enabled test suite, and a short run of
# every fuzz target.
test: test-deps vet unit fuzz-short

# Installs what the tests drive besides Go: the Node ws client for interop,
# HAProxy, Debian's chromium (the dashboard's browser test), and the tools
# that check deploy/: promtool and prometheus (Debian package prometheus),
# amtool and the Alertmanager that control/alerts' test pushes to (Debian
# package prometheus-alertmanager), nginx, and redis-server (the backplane's
# tests, netcore/backplane/redistest). The tests
# start their own servers on free loopback ports with temporary directories,
# so the services these packages start on install are not needed: on a
# systemd host the ones installed here are stopped and disabled, and
# --no-install-recommends leaves out prometheus-node-exporter.
STOP_SERVICE = if [ -d /run/systemd/system ]; then systemctl disable --now -q $(1) || true; fi
test-deps:
	@command -v node >/dev/null && command -v npm >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	cd netcore/testdata/nodews && npm ci --no-audit --no-fund --silent
	@command -v haproxy >/dev/null || (apt-get update -qq && apt-get install -y -qq haproxy >/dev/null)
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null && $(call STOP_SERVICE,prometheus))
	@command -v amtool >/dev/null && command -v prometheus-alertmanager >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null && $(call STOP_SERVICE,prometheus-alertmanager))
	@command -v nginx >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null && $(call STOP_SERVICE,nginx))
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)
	@command -v redis-server >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null && $(call STOP_SERVICE,redis-server))

vet:
	$(GO) vet ./...

# The race detector makes sync.Pool drop items at random, so the allocation
# tests (build tag !race) run in a second pass without it.
unit:
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run Allocs ./...

# Fuzz targets, one per parser: `make fuzz FUZZTIME=5m` for a longer run.
FUZZ_TARGETS := netcore/wsproto:FuzzParseHeader netcore/wsproto:FuzzParseRequest netcore/wsproto:FuzzUTF8 netcore:FuzzFrames \
	netcore/protocol:FuzzEnvelope netcore/upstream:FuzzParseFile netcore/upstream:FuzzParseFlag metrics:FuzzParseProcStat \
	loadtest:FuzzParsePromText control/check:FuzzParseRange
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$pkg/; \
	done

fuzz-short:
	$(MAKE) fuzz FUZZTIME=5s

# Every benchmark, in a format benchstat reads.
bench:
	mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee $(BIN)/bench.txt

clean:
	rm -rf $(BIN)

# The capacity suite (bench/capacity): builds sockmon and the reference
# servers, runs `sockmon load` against each, writes bench/RESULTS.md.
capacity:
	$(GO) run ./bench/capacity -repeats 3 -duration 5s -open-duration 10s -steady-rate 30000

# The dashboard's charting library, uPlot, pinned. The minified file, its
# stylesheet and its licence are committed under $(UPLOT_DIR) (no CDN, no
# build step); this refreshes them from npm and records their checksums,
# which control/dashboard's tests check against the pin. To upgrade: change
# UPLOT_VERSION, run make uplot, commit the four files.
UPLOT_VERSION := 1.6.32
UPLOT_DIR     := control/dashboard/static/vendor/uplot
uplot:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null && tar xzf uplot-$(UPLOT_VERSION).tgz); \
	cp "$$tmp/package/dist/uPlot.iife.min.js" "$$tmp/package/dist/uPlot.min.css" "$$tmp/package/LICENSE" $(UPLOT_DIR)/; \
	(echo "# uplot $(UPLOT_VERSION) from npm (make uplot)"; cd $(UPLOT_DIR) && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE) > $(UPLOT_DIR)/SHA256SUMS; \
	echo "uplot $(UPLOT_VERSION) in $(UPLOT_DIR)"
