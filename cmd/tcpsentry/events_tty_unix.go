//go:build unix

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// ttyColumns reports whether f is a terminal and its width in columns (0
// when the terminal does not say).
func ttyColumns(f *os.File) (int, bool) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, false
	}
	return int(ws.Col), true
}
