# kvsgate. `make test` installs what the tests drive (ffmpeg, GStreamer, the
# AWS CLI, Chromium and the npm players in testdata/players) when missing,
# then runs every test with those tools required.

GO ?= go
APT_PACKAGES := ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav awscli chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Real players for the playback tests (testdata/players/README.md). npm ci
# rewrites node_modules/.package-lock.json: older than the lock file = stale.
PLAYERS := testdata/players
PLAYERS_STAMP := $(PLAYERS)/node_modules/.package-lock.json

.PHONY: all build test test-tools players vet fuzz bench run demo clean

all: build

build:
	$(GO) build -o kvsgate ./cmd/kvsgate

# Installs the test tools that are missing (Debian packages).
test-tools:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	command -v gst-launch-1.0 >/dev/null || missing="$$missing gst"; \
	gst-inspect-1.0 x264enc >/dev/null 2>&1 || missing="$$missing gst-ugly"; \
	gst-inspect-1.0 matroskamux >/dev/null 2>&1 || missing="$$missing gst-good"; \
	[ -x /usr/bin/aws ] || missing="$$missing awscli"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing test tools (missing:$$missing)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PACKAGES); \
	fi
	@# Node only when there is none: Debian's npm conflicts with a nodejs that bundles npm.
	@if ! command -v npm >/dev/null; then \
		echo "installing test tools (missing: node/npm)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q nodejs npm; \
	fi

# hls.js, Shaka Player, dash.js and playwright-core, exactly as the lock file pins them.
players: $(PLAYERS_STAMP)

$(PLAYERS_STAMP): $(PLAYERS)/package.json $(PLAYERS)/package-lock.json | test-tools
	npm ci --prefix $(PLAYERS) --no-audit --no-fund
	touch $@

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

test: test-tools players vet
	KVSGATE_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 30m ./...

# Short fuzzing of every target (not part of `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./fragments/mkv/
	$(GO) test -run '^$$' -fuzz FuzzDecodeMeta -fuzztime 30s ./fragments/
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 30s ./session/
	$(GO) test -run '^$$' -fuzz FuzzAnnexB -fuzztime 30s ./images/
	$(GO) test -run '^$$' -fuzz FuzzParseTrack -fuzztime 30s ./images/
	$(GO) test -run '^$$' -fuzz FuzzParseSPS -fuzztime 30s ./hls/
	$(GO) test -run '^$$' -fuzz FuzzParseConfig -fuzztime 30s ./cmd/kvsgate/
	for f in FuzzParseAuthorization FuzzJSONBodies FuzzFragmentToken FuzzParseEpoch FuzzImagesToken FuzzSessionQuery FuzzConsoleRequest; do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s ./web/ || exit 1; \
	done

run:
	$(GO) run ./cmd/kvsgate serve --demo

clean:
	rm -rf kvsgate data
