# kvsgate. `make test` installs what the tests drive (ffmpeg, GStreamer, the
# AWS CLI) when missing, then runs every test with those tools required.

GO ?= go
APT_PACKAGES := ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav awscli
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build test test-tools vet fuzz bench run demo clean

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
	if [ -n "$$missing" ]; then \
		echo "installing test tools (missing:$$missing)"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PACKAGES); \
	fi

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

test: test-tools vet
	KVSGATE_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 30m ./...

# Short fuzzing of every target (not part of `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime 60s ./fragments/mkv/
	$(GO) test -run '^$$' -fuzz FuzzParseAuthorization -fuzztime 60s ./web/

run:
	$(GO) run ./cmd/kvsgate serve --demo

clean:
	rm -rf kvsgate data
