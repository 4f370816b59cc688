# The benchmark: captures generated with ground truth, tcpsentry and its
# peers side by side, bench/results/<date>/report.md with charts.
# `make bench` runs as root (the live part needs network namespaces and
# AF_PACKET) and installs the peers and tools it runs from Debian first.
.PHONY: test bench bench-deps bench-replay bench-quick pgo install install-systemd

# install: a static binary (CGO_ENABLED=0: no C library needed, and only
# without cgo can tcpsentry clear its capabilities on every thread) where
# go install puts it ($$GOBIN, else $$(go env GOPATH)/bin), or in
# $(DESTDIR)$(PREFIX)/bin when PREFIX is given.
# install-systemd: deploy/tcpsentry.service (ExecStart pointing at
# $(PREFIX)/bin, default /usr/local), an example /etc/tcpsentry/tcpsentry.env
# (kept if there is one) and, unless DESTDIR is set, the tcpsentry system
# user and a daemon-reload. See docs/deploy.md.
PREFIX ?=
DESTDIR ?=
UNITDIR ?= /etc/systemd/system
SYSTEMD_BINDIR = $(or $(PREFIX),/usr/local)/bin

test:
	go test -race -p 1 ./...

bench: bench-deps
	go run ./bench/suite -out bench/results -live

bench-deps:
	@if [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends tcpdump tcpreplay tshark tcptrace argus-server argus-client iproute2 util-linux; \
		systemctl disable --now argus.service >/dev/null 2>&1 || true; \
	else \
		echo "bench-deps: not root, installing nothing (the suite skips a missing peer and says why)"; \
	fi

bench-replay:
	go run ./bench/suite -out bench/results

bench-quick:
	go run ./bench/suite -quick -out $${TMPDIR:-/tmp}/tcpsentry-bench

# pgo: cmd/tcpsentry/default.pgo, the CPU profile go build uses for
# profile-guided optimization (go help build, -pgo; the benchmark's main
# packages link to it, so they measure the build that is shipped). It is
# tcpsentry replay, built without a profile, over the benchmark's
# standard capture (130,000 connections, 10M packets, 1.2 GB in TMPDIR
# while it runs) with 1 and 2 workers, three times each. Run it again
# when the hot path changes: a stale profile still builds, it only
# guides less.
pgo:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	go run ./bench/gen -connections 130000 -o "$$dir/std.pcap" >/dev/null; \
	go build -pgo=off -o "$$dir/tcpsentry" ./cmd/tcpsentry; \
	for i in 1 2 3; do for w in 1 2; do \
		"$$dir/tcpsentry" replay --workers $$w --events-file none --cpuprofile "$$dir/w$$w-$$i.prof" "$$dir/std.pcap" 2>"$$dir/replay.log" \
			|| { cat "$$dir/replay.log" >&2; exit 1; }; \
	done; done; \
	go tool pprof -proto "$$dir"/*.prof > "$$dir/merged.pgo"; \
	mv "$$dir/merged.pgo" cmd/tcpsentry/default.pgo; \
	echo "pgo: wrote cmd/tcpsentry/default.pgo from $$(ls "$$dir"/*.prof | wc -l) profiles"

install:
	CGO_ENABLED=0 $(if $(PREFIX),GOBIN=$(abspath $(DESTDIR)$(PREFIX)/bin)) go install -trimpath -buildvcs=auto ./cmd/tcpsentry

install-systemd:
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/tcpsentry|$(SYSTEMD_BINDIR)/tcpsentry|' deploy/tcpsentry.service > $(DESTDIR)$(UNITDIR)/tcpsentry.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/tcpsentry.service
	install -d -m 0755 $(DESTDIR)/etc/tcpsentry
	test -e $(DESTDIR)/etc/tcpsentry/tcpsentry.env || install -m 0644 deploy/tcpsentry.env $(DESTDIR)/etc/tcpsentry/tcpsentry.env
	@if [ -z "$(DESTDIR)" ]; then \
		id -u tcpsentry >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /var/lib/tcpsentry --shell /usr/sbin/nologin tcpsentry; \
		if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo "install-systemd: set the interfaces in /etc/tcpsentry/tcpsentry.env, then: systemctl enable --now tcpsentry"; \
	fi
