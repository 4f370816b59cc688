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
