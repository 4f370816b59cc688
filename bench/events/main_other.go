//go:build !linux

// Command events benchmarks the event path; it runs on Linux only, like
// the sensor.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "events: the benchmark runs on Linux only")
	os.Exit(1)
}
