package ring_test

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcpsentry/tcpsentry/ring"
)

// TestPopulatePages: the pages PopulatePages covers are resident after it
// (mincore), those outside it are not, and what they hold is unchanged.
func TestPopulatePages(t *testing.T) {
	page := os.Getpagesize()
	s := freshMapping(t, 64)
	if n := resident(t, s); n != 0 {
		t.Fatalf("%d pages of a fresh mapping are resident", n)
	}
	// From the middle of page 4 to the middle of page 12: pages 5 to 11.
	if !ring.PopulatePages(s, 4*page+page/2, 12*page+page/2) {
		t.Fatal("PopulatePages failed (Linux 5.14 and later have MADV_POPULATE_WRITE)")
	}
	if n := resident(t, s); n != 7 {
		t.Errorf("%d pages resident after populating 7", n)
	}
	for i, v := range s {
		if v != 0 {
			t.Fatalf("byte %d is %d after PopulatePages", i, v)
		}
	}
	for _, r := range [][2]int{{-1, 4}, {4, len(s) + 1}, {8, 8}, {9, 8}} {
		if ring.PopulatePages(s, r[0], r[1]) {
			t.Errorf("PopulatePages(s, %d, %d) on %d elements succeeded", r[0], r[1], len(s))
		}
	}
	if ring.PopulatePages(42, 0, 1) {
		t.Error("PopulatePages of a non-slice succeeded")
	}
}

// resident counts the pages of s in memory.
// freshMapping returns memory of its own, certainly untouched: pages
// pages, unmapped when the test ends.
func freshMapping(t *testing.T, pages int) []byte {
	t.Helper()
	s, err := unix.Mmap(-1, 0, pages*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(s) })
	return s
}

func resident(t *testing.T, s []byte) int {
	t.Helper()
	vec := make([]byte, len(s)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&s[0])), uintptr(len(s)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal("mincore:", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestResident: Resident counts the bytes of a value that lie in
// resident pages, a page shared with other values only for the value's
// own bytes.
func TestResident(t *testing.T) {
	page := os.Getpagesize()
	s := freshMapping(t, 16)
	check := func(what string, v any, size, res int64) {
		t.Helper()
		gs, gr, ok := ring.Resident(v)
		if !ok || gs != size || gr != res {
			t.Errorf("%s: Resident = %d, %d, %v; want %d, %d, true", what, gs, gr, ok, size, res)
		}
	}
	p := int64(page)
	check("untouched", s, 16*p, 0)
	s[3*page] = 1
	s[7*page+5] = 1
	s[15*page] = 1
	check("three pages touched", s, 16*p, 3*p)
	// From the middle of page 3 to the middle of page 8: half of page 3,
	// page 7, none of 8.
	check("a slice within", s[3*page+page/2:8*page+page/2:8*page+page/2], 5*p, p/2+p)
	// The capacity counts, not the length.
	check("capacity", s[:0], 16*p, 3*p)
	type pair struct{ a, b uint64 }
	pp := (*pair)(unsafe.Pointer(&s[7*page+16]))
	check("a pointer", pp, 16, 16)
	check("a pointer into an untouched page", (*pair)(unsafe.Pointer(&s[9*page])), 16, 0)
	for _, v := range []any{nil, 3, (*pair)(nil), "x"} {
		if _, _, ok := ring.Resident(v); ok {
			t.Errorf("Resident(%#v) is ok", v)
		}
	}
}
