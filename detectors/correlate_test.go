package detectors

import (
	"reflect"
	"testing"
)

// TestQueuedFactFields: a fact waits in the Correlator's queue as a
// queuedFact, and its time, flow id and order in the queue item; every
// other field of Fact must have its place in queuedFact, or a fact would
// come out of the queue without it.
func TestQueuedFactFields(t *testing.T) {
	ft, qt := reflect.TypeFor[Fact](), reflect.TypeFor[queuedFact]()
	inItem := map[string]bool{"At": true, "FlowID": true, "seq": true}
	for f := range ft.Fields() {
		if inItem[f.Name] {
			continue
		}
		if q, ok := qt.FieldByName(f.Name); !ok || q.Type != f.Type {
			t.Errorf("Fact.%s (%s) has no place in queuedFact", f.Name, f.Type)
		}
	}
	if qt.NumField() != ft.NumField()-len(inItem) {
		t.Errorf("queuedFact has %d fields, Fact %d", qt.NumField(), ft.NumField())
	}
	if qt.Size() >= ft.Size() {
		t.Errorf("queuedFact is %d bytes, Fact %d", qt.Size(), ft.Size())
	}
}
