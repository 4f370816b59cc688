//go:build unix

package main

import (
	"os"
	"syscall"
)

// owner is the uid owning path, -1 if unknown.
func owner(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
