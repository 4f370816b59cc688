//go:build !linux

// Command live benchmarks live capture; it needs Linux (AF_PACKET,
// network namespaces).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "live: the live capture benchmark needs Linux")
	os.Exit(1)
}
