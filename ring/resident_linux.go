package ring

import (
	"reflect"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident reports how many bytes s takes (a slice's backing array up to
// its capacity, or what a pointer points at) and how many of them lie in
// pages that are in memory now (mincore). A page that s shares with other
// values counts only for the bytes of s in it, so the figures of distinct
// values add up. ok is false when s is neither or the kernel would not
// say.
func Resident(s any) (size, resident int64, ok bool) {
	v := reflect.ValueOf(s)
	var start uintptr
	switch v.Kind() {
	case reflect.Slice:
		start, size = v.Pointer(), int64(v.Cap())*int64(v.Type().Elem().Size())
	case reflect.Pointer:
		if v.IsNil() {
			return 0, 0, false
		}
		start, size = v.Pointer(), int64(v.Type().Elem().Size())
	default:
		return 0, 0, false
	}
	if size == 0 {
		return 0, 0, true
	}
	end := start + uintptr(size)
	first := start &^ (pageSize - 1)
	vec := make([]byte, (end-first+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, first, end-first, uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return size, 0, false
	}
	for i, in := range vec {
		if in&1 == 0 {
			continue
		}
		a := first + uintptr(i)*pageSize
		b := a + pageSize
		resident += int64(min(b, end) - max(a, start))
	}
	return size, resident, true
}
