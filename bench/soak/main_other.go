//go:build !linux

// Command soak is the replay soak test; it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "soak: runs on Linux only (it reads /proc/self/status)")
	os.Exit(2)
}
