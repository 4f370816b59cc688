package hugepage

import (
	"syscall"
	"unsafe"
)

// Advise marks the whole 2 MiB pages inside s for transparent huge pages
// (madvise MADV_HUGEPAGE): the kernel then backs them with huge pages as
// they are first touched, where its settings allow ("always" or
// "madvise" in /sys/kernel/mm/transparent_hugepage/enabled). It is a hint:
// on failure, or where huge pages are off, s stays as it is. Call it on
// a fresh, untouched allocation; pages touched before keep their size.
func Advise[T any](s []T) {
	if len(s) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	end := start + uintptr(len(s))*unsafe.Sizeof(s[0])
	a, b := (start+Size-1)&^(Size-1), end&^(Size-1)
	if b <= a {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, a, b-a, madvHugepage)
}

const madvHugepage = 14 // MADV_HUGEPAGE
