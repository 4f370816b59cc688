package flowtable

import (
	"reflect"
	"testing"
)

// TestConnLayout keeps the layout Conn's comment describes: four whole
// cache lines, and what every segment touches in the first two.
func TestConnLayout(t *testing.T) {
	const line = 64
	ct, st := reflect.TypeOf(Conn{}), reflect.TypeOf(Side{})
	if ct.Size() != 4*line || st.Size() != line/2 {
		t.Fatalf("Conn is %d bytes, Side %d; want %d and %d", ct.Size(), st.Size(), 4*line, line/2)
	}
	for _, name := range []string{"Key", "ClientIsA", "Stage", "Watch", "class", "LastTS", "linkTS"} {
		f, _ := ct.FieldByName(name)
		if end := f.Offset + f.Type.Size(); end > line {
			t.Errorf("%s ends at byte %d, past the first line", name, end)
		}
	}
	if f, _ := ct.FieldByName("Side"); f.Offset != line {
		t.Errorf("Side starts at byte %d, not at the second line", f.Offset)
	}
	// The lines the read-ahead passes ask for by number, and the fields
	// the portable prefetch reads of each.
	for name, l := range map[string]int{
		"Key": lineKey, "LastTS": lineKey, "linkTS": lineKey,
		"Side":  lineSides,
		"Notes": lineTimes, "SynTS": lineTimes, "EndTS": lineTimes,
		"histLo": lineLinks, "histLen": lineLinks,
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
// once per direction, across the word the codes straddle, and the
// seventeenth is dropped.
func TestHistoryPacking(t *testing.T) {
	var c Conn
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
}
