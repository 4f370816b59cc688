package ring

import (
	"reflect"

	"golang.org/x/sys/unix"
)

// AdviseHugePages marks the whole 2 MiB pages inside slice s, which must
// not have been touched yet, for transparent huge pages (madvise
// MADV_HUGEPAGE): the kernel backs them with huge pages as they are first
// touched, where its settings allow ("always" or "madvise" in
// /sys/kernel/mm/transparent_hugepage/enabled). It is a hint: on failure,
// where huge pages are off, or when s is not a slice, nothing changes.
func AdviseHugePages(s any) { madviseSlice(s, unix.MADV_HUGEPAGE) }

// CollapseHugePages does the same for a slice already touched, and asks
// the kernel to move its pages into huge pages now (MADV_COLLAPSE, Linux
// 6.1 and later; before, its background scan does so in time).
func CollapseHugePages(s any) {
	if madviseSlice(s, unix.MADV_HUGEPAGE) {
		madviseSlice(s, unix.MADV_COLLAPSE)
	}
}

var pageSize = uintptr(unix.Getpagesize())

// PopulatePages has the kernel fault in the pages that hold elements from
// to to (excluded) of slice s as a first write would, without changing
// what they hold (madvise MADV_POPULATE_WRITE, Linux 5.14 and later), so
// that the first touch of a fresh table slot does not stop its goroutine
// for a page fault (and, in a huge page, the zeroing of 2 MiB). It may
// run beside goroutines that use the memory: only whole pages the range
// covers are faulted in, and pages already there are left alone. It
// reports whether the kernel did it.
func PopulatePages(s any, from, to int) bool {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Slice || from < 0 || to > v.Len() || from >= to {
		return false
	}
	size := v.Type().Elem().Size()
	base := v.Pointer()
	a, b := base+uintptr(from)*size, base+uintptr(to)*size
	a = (a + pageSize - 1) &^ (pageSize - 1)
	b &^= pageSize - 1
	if b <= a {
		return true
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, a, b-a, unix.MADV_POPULATE_WRITE)
	return errno == 0
}

// madviseSlice applies advice to the whole huge pages inside slice s and
// reports whether the kernel took it.
func madviseSlice(s any, advice int) bool {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Slice || v.Len() == 0 {
		return false
	}
	start := v.Pointer()
	end := start + uintptr(v.Len())*v.Type().Elem().Size()
	a, b := (start+HugePageSize-1)&^(HugePageSize-1), end&^(HugePageSize-1)
	if b <= a {
		return false
	}
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, a, b-a, uintptr(advice))
	return errno == 0
}
