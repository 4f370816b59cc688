package ring_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/tcpsentry/tcpsentry/ring"
)

// TestAdviseHugePages: the pages AdviseHugePages marks are eligible for
// huge pages (smaps says so for the mapping that holds them), and so are
// those of a slice CollapseHugePages moved after its first touch.
func TestAdviseHugePages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("transparent huge pages are Linux's")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages are off here (%q, %v)", mode, err)
	}
	madvise := strings.Contains(string(mode), "[madvise]")
	for _, touchFirst := range []bool{false, true} {
		s := make([]uint64, 16<<20/8) // 16 MiB: at least 7 whole huge pages
		// Only whole huge pages inside s are marked: look at the first.
		addr := (uintptr(unsafe.Pointer(&s[0])) + ring.HugePageSize - 1) &^ (ring.HugePageSize - 1)
		if eligible, _ := mapping(t, addr); eligible && madvise {
			t.Fatalf("the mapping is eligible before the advice (mode %q): the test proves nothing", mode)
		}
		if touchFirst {
			touch(s)
			ring.CollapseHugePages(s)
		} else {
			ring.AdviseHugePages(s)
			touch(s)
		}
		eligible, huge := mapping(t, addr)
		if !eligible {
			t.Fatalf("touched first %v: after the advice the mapping is not eligible for huge pages", touchFirst)
		}
		// Whether the kernel found free huge pages depends on its memory,
		// not on the advice: said, not checked.
		t.Logf("touched first %v: %d kB of the mapping are in huge pages", touchFirst, huge)
		runtime.KeepAlive(s)
	}
	// Anything else is ignored.
	ring.AdviseHugePages(nil)
	ring.AdviseHugePages(42)
	ring.CollapseHugePages([]byte{})
	ring.AdviseHugePages(make([]byte, 100))
}

func touch(s []uint64) {
	for i := range s {
		s[i] = uint64(i)
	}
}

// mapping reads /proc/self/smaps for the mapping that holds addr: whether
// it is eligible for transparent huge pages and how many kB are in them.
func mapping(t *testing.T, addr uintptr) (eligible bool, hugeKB int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) > 0 && !strings.HasSuffix(f[0], ":") { // "lo-hi perms ...": a mapping starts
			var lo, hi uintptr
			if n, _ := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); n == 2 {
				in = lo <= addr && addr < hi
			}
			continue
		}
		if !in {
			continue
		}
		var v int
		if n, _ := fmt.Sscanf(line, "AnonHugePages: %d kB", &v); n == 1 {
			hugeKB = v
		}
		if n, _ := fmt.Sscanf(line, "THPeligible: %d", &v); n == 1 {
			eligible = v == 1
			return eligible, hugeKB
		}
	}
	t.Fatalf("no mapping holds %#x in /proc/self/smaps (%v)", addr, sc.Err())
	return
}
