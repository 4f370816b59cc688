package ring

import (
	"time"

	"golang.org/x/sys/unix"
)

// ProcessCPU returns the processor time this process has used so far,
// user and system, over all its threads.
func ProcessCPU() (time.Duration, bool) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
