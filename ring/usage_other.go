//go:build !linux

package ring

import "time"

// ProcessCPU cannot tell here: ok is false.
func ProcessCPU() (time.Duration, bool) { return 0, false }
