# The benchmark: captures generated with ground truth, tcpsentry and its
# peers side by side, bench/results/<date>/report.md with charts.
# `make bench` needs root for the live part (network namespaces, AF_PACKET).
.PHONY: test bench bench-replay bench-quick

test:
	go test -race -p 1 ./...

bench:
	go run ./bench/suite -out bench/results -live

bench-replay:
	go run ./bench/suite -out bench/results

bench-quick:
	go run ./bench/suite -quick -out $${TMPDIR:-/tmp}/tcpsentry-bench
