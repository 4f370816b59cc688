# The benchmark: captures generated with ground truth, tcpsentry and its
# peers side by side, bench/results/<date>/report.md with charts.
# `make bench` runs as root (the live part needs network namespaces and
# AF_PACKET) and installs the peers and tools it runs from Debian first.
.PHONY: test bench bench-deps bench-replay bench-quick

test:
	go test -race -p 1 ./...

bench: bench-deps
	go run ./bench/suite -out bench/results -live

bench-deps:
	@if [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends tcpdump tcpreplay tshark tcptrace iproute2 util-linux; \
	else \
		echo "bench-deps: not root, installing nothing (the suite skips a missing peer and says why)"; \
	fi

bench-replay:
	go run ./bench/suite -out bench/results

bench-quick:
	go run ./bench/suite -quick -out $${TMPDIR:-/tmp}/tcpsentry-bench
