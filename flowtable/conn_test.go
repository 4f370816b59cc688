package flowtable

import (
	"reflect"
	"testing"
)

// TestConnLayout keeps the layout Conn's comment describes: four whole
// cache lines, and what every segment touches in the first three.
func TestConnLayout(t *testing.T) {
	const line = 64
	ct, st := reflect.TypeOf(Conn{}), reflect.TypeOf(Side{})
	if ct.Size() != 4*line || st.Size() != 40 {
		t.Fatalf("Conn is %d bytes, Side %d; want %d and 40", ct.Size(), st.Size(), 4*line)
	}
	for _, name := range []string{"Key", "ClientIsA", "Stage", "Watch", "class", "Notes", "LastTS"} {
		f, _ := ct.FieldByName(name)
		if end := f.Offset + f.Type.Size(); end > line {
			t.Errorf("%s ends at byte %d, past the first line", name, end)
		}
	}
	for _, name := range []string{"Side", "linkTS", "SynTS", "EstTS", "EndTS"} {
		f, _ := ct.FieldByName(name)
		if end := f.Offset + f.Type.Size(); end > 3*line {
			t.Errorf("%s ends at byte %d, past the first three lines", name, end)
		}
	}
	if f, _ := ct.FieldByName("Side"); f.Offset != line {
		t.Errorf("Side starts at byte %d, not at the second line", f.Offset)
	}
}
