package flowtable

import (
	"reflect"
	"testing"
)

// TestConnLayout keeps the layout Conn's comment describes: whole cache
// lines, one line per Side, and what every segment touches in the first
// three lines.
func TestConnLayout(t *testing.T) {
	const line = 64
	ct, st := reflect.TypeOf(Conn{}), reflect.TypeOf(Side{})
	if ct.Size() != 6*line || st.Size() != line {
		t.Fatalf("Conn is %d bytes, Side %d; want %d and %d", ct.Size(), st.Size(), 6*line, line)
	}
	for _, name := range []string{"Key", "ClientIsA", "Stage", "Watch", "class", "LastTS", "linkTS", "Side"} {
		f, _ := ct.FieldByName(name)
		if end := f.Offset + f.Type.Size(); end > 3*line {
			t.Errorf("%s ends at byte %d, past the first three lines", name, end)
		}
	}
	if f, _ := ct.FieldByName("Side"); f.Offset%line != 0 {
		t.Errorf("Side starts at byte %d, not on a line", f.Offset)
	}
}
