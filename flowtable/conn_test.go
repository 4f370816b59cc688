package flowtable

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestConnLayout keeps the layout Conn's comment describes: three whole
// cache lines, and what every segment touches in the first two.
func TestConnLayout(t *testing.T) {
	const line = 64
	ct, st := reflect.TypeOf(Conn{}), reflect.TypeOf(Side{})
	if ct.Size() != 3*line || st.Size() != line/2 {
		t.Fatalf("Conn is %d bytes, Side %d; want %d and %d", ct.Size(), st.Size(), 3*line, line/2)
	}
	if f, _ := ct.FieldByName("Side"); f.Offset != line {
		t.Errorf("Side starts at byte %d, not at the second line", f.Offset)
	}
	// The lines the read-ahead passes ask for by number, and the fields
	// the portable prefetch reads of each.
	for name, l := range map[string]int{
		"Key": lineKey, "ClientIsA": lineKey, "Stage": lineKey, "Watch": lineKey, "class": lineKey,
		"LastTS": lineKey, "linkTS": lineKey,
		"Side":  lineSides,
		"Notes": lineCold, "SynTS": lineCold, "EndTS": lineCold, "bits": lineCold,
	} {
		f, _ := ct.FieldByName(name)
		if first, last := f.Offset/line, (f.Offset+f.Type.Size()-1)/line; first != uintptr(l) || last != uintptr(l) {
			t.Errorf("%s is in lines %d to %d, not in line %d alone", name, first, last, l)
		}
	}
	if ct.Size() != linesPerConn*line {
		t.Errorf("linesPerConn is %d", linesPerConn)
	}
}

// TestHistoryPacking: the letters come back in the order recorded, each
// once per direction, sixteen of them, beside the flags that share their
// word; the seventeenth is dropped.
func TestHistoryPacking(t *testing.T) {
	var c Conn
	c.bits = bitTimer | bitPrevTold
	want := ""
	// All 20 letters: the client's in one order, the server's in another.
	add := func(li int, client bool) {
		c.addHistory(li, client)
		c.addHistory(li, client) // again: kept once
		l := histLetters[li]
		if client {
			l -= 'a' - 'A'
		}
		if len(want) < MaxHistory {
			want += string(l)
		}
	}
	for i := range len(histLetters) {
		add(i, true)
		add(len(histLetters)-1-i, false)
	}
	if h, n := c.History(); string(h[:n]) != want || n != MaxHistory {
		t.Errorf("history %q (%d), want %q", h[:n], n, want)
	}
	if c.bits&(bitTimer|bitPrevTold) != bitTimer|bitPrevTold {
		t.Error("the letters changed the flags")
	}
}

// TestHistoryRandom: against a plain list, for random sequences of
// letters, repeats included.
func TestHistoryRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var c Conn
		var want []byte
		seen := map[byte]bool{}
		for range r.IntN(40) {
			li, client := r.IntN(len(histLetters)), r.IntN(2) == 0
			c.addHistory(li, client)
			l := histLetters[li]
			if client {
				l -= 'a' - 'A'
			}
			if !seen[l] && len(want) < MaxHistory {
				seen[l] = true
				want = append(want, l)
			}
		}
		if h, n := c.History(); string(h[:n]) != string(want) {
			t.Fatalf("history %q, want %q", h[:n], want)
		}
	}
}
