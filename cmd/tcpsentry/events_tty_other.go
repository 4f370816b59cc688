//go:build !unix

package main

import "os"

// ttyColumns reports whether f is a terminal (a character device); the
// width is not known here (0: the caller uses $COLUMNS or 80).
func ttyColumns(f *os.File) (int, bool) {
	fi, err := f.Stat()
	if err != nil {
		return 0, false
	}
	return 0, fi.Mode()&os.ModeCharDevice != 0
}
