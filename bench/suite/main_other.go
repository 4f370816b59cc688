//go:build !linux

// Command suite is the replay benchmark; it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "suite: runs on Linux only (AF_PACKET, /proc, rusage)")
	os.Exit(1)
}
