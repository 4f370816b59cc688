package events

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tcpsentry/tcpsentry/detectors"
)

// fuzzBytes hands out fuzz input field by field; past the end it gives
// zeros.
type fuzzBytes []byte

func (b *fuzzBytes) take(n int) []byte {
	out := make([]byte, n)
	copy(out, *b)
	*b = (*b)[min(n, len(*b)):]
	return out
}

func (b *fuzzBytes) u8() uint8   { return b.take(1)[0] }
func (b *fuzzBytes) u16() uint16 { return binary.BigEndian.Uint16(b.take(2)) }
func (b *fuzzBytes) u32() uint32 { return binary.BigEndian.Uint32(b.take(4)) }
func (b *fuzzBytes) u64() uint64 { return binary.BigEndian.Uint64(b.take(8)) }

// fuzzEvent fills every field of an Event from raw bytes, with no regard
// for which values a detector could produce.
func fuzzEvent(b *fuzzBytes) detectors.Event {
	var ev detectors.Event
	ev.Type = detectors.Type(b.u8())
	ev.Cause = detectors.Cause(b.u8())
	ev.Severity = detectors.Severity(b.u8())
	ev.Start = int64(b.u64())
	ev.End = int64(b.u64())
	ev.Family = b.u8()
	ev.Client.Addr = [16]byte(b.take(16))
	ev.Client.Port = b.u16()
	ev.Server.Addr = [16]byte(b.take(16))
	ev.Server.Port = b.u16()
	ev.NVLAN = b.u8()
	ev.VLAN = [2]uint16{b.u16(), b.u16()}
	ev.FlowID = b.u64()
	ev.History = [16]byte(b.take(16))
	ev.HistoryLen = b.u8()
	ev.Capture = b.u8()
	ev.Count = b.u32()
	ev.Iface = b.u16()
	ev.NEvidence = b.u8()
	for i := range ev.Evidence {
		ev.Evidence[i] = detectors.Evidence{Key: detectors.EvidenceKey(b.u8()), Value: int64(b.u64())}
	}
	ev.NTop = b.u8()
	for i := range ev.Top {
		ev.Top[i] = detectors.Peer{Addr: [16]byte(b.take(16)), Count: b.u32()}
	}
	return ev
}

func FuzzAppendJSON(f *testing.F) {
	// Seeds: the golden events, re-serialised in fuzzEvent's layout.
	for _, c := range goldenCases(f) {
		f.Add(eventBytes(&c.ev), "span-a", c.seq)
	}
	f.Add([]byte{}, "", uint64(0))
	f.Add([]byte(strings.Repeat("\xff", 300)), hostile, ^uint64(0))

	f.Fuzz(func(t *testing.T, data []byte, sensor string, seq uint64) {
		b := fuzzBytes(data)
		ev := fuzzEvent(&b)
		enc := Encoder{Sensor: sensor, Version: sensor, Interfaces: []string{sensor, "eth1"}, IDPrefix: sensor,
			CommunitySeed: uint16(seq)}

		out := enc.AppendJSON(nil, &ev, seq)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		var w wire
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatal(err)
		}
		if w.Observer.Name != replaceInvalid(sensor) {
			t.Errorf("observer.name %q, want %q", w.Observer.Name, replaceInvalid(sensor))
		}
		if w.Source.Port != ev.Client.Port || w.Destination.Port != ev.Server.Port {
			t.Errorf("ports %d %d, want %d %d", w.Source.Port, w.Destination.Port, ev.Client.Port, ev.Server.Port)
		}
		if w.Source.IP != ev.Client.AddrOf(ev.Family).String() || w.Destination.IP != ev.Server.AddrOf(ev.Family).String() {
			t.Errorf("addresses %s %s", w.Source.IP, w.Destination.IP)
		}
		if want := string(AppendCommunityID(nil, enc.CommunitySeed, ev.Family, ev.Client.Addr, ev.Server.Addr, ev.Client.Port, ev.Server.Port, 6)); ev.FlowID == 0 && w.Network.CID != "" || ev.FlowID != 0 && w.Network.CID != want {
			t.Errorf("community_id %s, want %s", w.Network.CID, want)
		}
		if w.Tcpsentry.FlowID != ev.FlowID || w.Tcpsentry.Count != ev.Count {
			t.Errorf("flow_id %d count %d", w.Tcpsentry.FlowID, w.Tcpsentry.Count)
		}
		// The same bytes appended to a non-empty buffer.
		pre := enc.AppendJSON([]byte("x"), &ev, seq)
		if string(pre[1:]) != string(out) {
			t.Error("output depends on the buffer it is appended to")
		}
	})
}

// eventBytes is the inverse of fuzzEvent, for seeds.
func eventBytes(ev *detectors.Event) []byte {
	var b []byte
	b = append(b, byte(ev.Type), byte(ev.Cause), byte(ev.Severity))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Start))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.End))
	b = append(b, ev.Family)
	b = append(b, ev.Client.Addr[:]...)
	b = binary.BigEndian.AppendUint16(b, ev.Client.Port)
	b = append(b, ev.Server.Addr[:]...)
	b = binary.BigEndian.AppendUint16(b, ev.Server.Port)
	b = append(b, ev.NVLAN)
	b = binary.BigEndian.AppendUint16(b, ev.VLAN[0])
	b = binary.BigEndian.AppendUint16(b, ev.VLAN[1])
	b = binary.BigEndian.AppendUint64(b, ev.FlowID)
	b = append(b, ev.History[:]...)
	b = append(b, ev.HistoryLen, ev.Capture)
	b = binary.BigEndian.AppendUint32(b, ev.Count)
	b = binary.BigEndian.AppendUint16(b, ev.Iface)
	b = append(b, ev.NEvidence)
	for _, x := range ev.Evidence {
		b = append(b, byte(x.Key))
		b = binary.BigEndian.AppendUint64(b, uint64(x.Value))
	}
	b = append(b, ev.NTop)
	for _, p := range ev.Top {
		b = append(b, p.Addr[:]...)
		b = binary.BigEndian.AppendUint32(b, p.Count)
	}
	return b
}

// TestFuzzEventLayout: the seeds decode back into the golden events.
func TestFuzzEventLayout(t *testing.T) {
	for _, c := range goldenCases(t) {
		b := fuzzBytes(eventBytes(&c.ev))
		if got := fuzzEvent(&b); got != c.ev || len(b) != 0 {
			t.Errorf("%s: round trip gives %+v", c.name, got)
		}
	}
}

// FuzzAppendString checks the escaper against encoding/json, byte for byte.
func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add(hostile)
	f.Add("\xed\xa0\x80\xf4\x90\x80\x80\xe2\x80")
	f.Fuzz(func(t *testing.T, s string) {
		want := jsonString(t, s)
		if got := string(appendString(nil, s)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
		if got := string(appendString(nil, []byte(s))); got != want {
			t.Errorf("appendString([]byte %q) = %s, want %s", s, got, want)
		}
		if got := needsEscape([]byte(s)); got != (want != `"`+s+`"`) {
			t.Errorf("needsEscape(%q) = %v", s, got)
		}
		buf := append([]byte("pre"), s...)
		if got, want := string(escapeTail(buf, 3)), "pre"+want[1:len(want)-1]; got != want {
			t.Errorf("escapeTail(%q) = %q, want %q", s, got, want)
		}
	})
}
