package events

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tcpsentry/tcpsentry/detectors"
)

// SchemaVersion is the version of the event record this package writes
// (tcpsentry.schema). Renaming, removing or retyping a field bumps it.
const SchemaVersion = 1

// IDDigits is how many digits, zero-padded, follow Encoder.IDPrefix in
// event.id. A larger sequence number is written in full.
const IDDigits = 12

// Encoder writes events as schema v1 JSON. Its fields describe the sensor
// and are the same for every event; set them once before the first call.
// AppendJSON only reads them, so one Encoder may serve several goroutines
// as long as nobody changes it meanwhile. The zero value works and writes
// empty strings, Community IDs with seed 0, and no observer.ingress.
type Encoder struct {
	// Sensor is observer.name, the name of this sensor (also the
	// <sensor> token of the NATS subject).
	Sensor string
	// Version is observer.version, the tcpsentry release.
	Version string
	// Interfaces are the capture interfaces in the sensor's order;
	// Event.Iface indexes them for observer.ingress.interface.name. When
	// the index is out of range the observer.ingress object is left out.
	Interfaces []string
	// CommunitySeed is the Community ID seed (0 unless the site chose
	// one: it must match the seed of the Zeek/Suricata sensors the
	// events are joined with).
	CommunitySeed uint16
	// IDPrefix starts every event.id; the event's sequence number
	// follows, zero-padded to IDDigits digits. It should be unique per
	// sensor run (for example the sensor name and a random run tag,
	// "span-a-7f3c-"), because NATS deduplicates on event.id.
	IDPrefix string
}

// AppendID appends the event.id of the event numbered seq (its value, not
// JSON-escaped): the NATS Nats-Msg-Id header carries it.
func (e *Encoder) AppendID(dst []byte, seq uint64) []byte {
	dst = append(dst, e.IDPrefix...)
	return appendZeroPadded(dst, seq, IDDigits)
}

// AppendJSON appends ev as one schema v1 JSON object (DESIGN.md section 3)
// to dst and returns the extended buffer. It writes no newline: the
// caller adds one per line of output. seq numbers the event for event.id.
// AppendJSON allocates nothing when dst has room for the result: today's
// events take 1.0-1.2 KB with short names, so a 2 KiB buffer reused from
// event to event never grows.
//
// Fields appear in the order of the design, compact. Values out of range
// still give valid JSON: an unknown Type, Cause or EvidenceKey is written
// as "unknown", a Family other than 4 as IPv6, NEvidence and HistoryLen are
// clamped to their arrays, NVLAN to 2. event.reason is left out for
// CauseNone. tcpsentry.capture always has midstream, one_sided and
// loss_suspected (as in the design's example) and has checksum_offload
// only when that flag is set: it marks frames the capturing host sent
// itself, which a SPAN port never sees, so "absent" means false.
func (e *Encoder) AppendJSON(dst []byte, ev *detectors.Event, seq uint64) []byte {
	if ev.NEvidence > detectors.MaxEvidence {
		// detectors.Event.Lookup indexes Evidence by NEvidence;
		// never let a corrupt count reach it.
		c := *ev
		c.NEvidence = detectors.MaxEvidence
		ev = &c
	}

	dst = append(dst, `{"@timestamp":`...)
	dst = appendTime(dst, ev.End)
	dst = append(dst, `,"message":`...)
	dst = appendMessage(dst, ev)

	// event
	dst = append(dst, `,"event":{"id":"`...)
	dst = appendEscaped(dst, e.IDPrefix)
	dst = appendZeroPadded(dst, seq, IDDigits)
	dst = append(dst, `","kind":"alert","category":["network"],"type":["connection","error"],"outcome":"failure","action":`...)
	dst = appendString(dst, ev.Type.String())
	if ev.Cause != detectors.CauseNone {
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, ev.Cause.String())
	}
	dst = append(dst, `,"severity":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Severity), 10)
	dst = append(dst, `,"dataset":"tcpsentry.anomaly","start":`...)
	dst = appendTime(dst, ev.Start)
	dst = append(dst, `,"end":`...)
	dst = appendTime(dst, ev.End)

	// observer
	dst = append(dst, `},"observer":{"name":`...)
	dst = appendString(dst, e.Sensor)
	dst = append(dst, `,"type":"sensor","product":"tcpsentry","version":`...)
	dst = appendString(dst, e.Version)
	if int(ev.Iface) < len(e.Interfaces) {
		dst = append(dst, `,"ingress":{"interface":{"name":`...)
		dst = appendString(dst, e.Interfaces[ev.Iface])
		dst = append(dst, `}}`...)
	}

	// source, destination
	dst = append(dst, `},"source":`...)
	dst = appendEndpoint(dst, ev.Family, ev.Client)
	dst = append(dst, `,"destination":`...)
	dst = appendEndpoint(dst, ev.Family, ev.Server)

	// network
	dst = append(dst, `,"network":{"transport":"tcp","type":`...)
	if ev.Family == 4 {
		dst = append(dst, `"ipv4"`...)
	} else {
		dst = append(dst, `"ipv6"`...)
	}
	dst = append(dst, `,"iana_number":"6"`...)
	if !aggregate(ev) {
		dst = append(dst, `,"community_id":"`...)
		dst = AppendCommunityID(dst, e.CommunitySeed, ev.Family,
			ev.Client.Addr, ev.Server.Addr, ev.Client.Port, ev.Server.Port, 6)
		dst = append(dst, '"')
	}
	if ev.NVLAN > 0 {
		dst = append(dst, `,"vlan":`...)
		dst = appendVLAN(dst, ev.VLAN[0])
		if ev.NVLAN > 1 {
			dst = append(dst, `,"inner":{"vlan":`...)
			dst = appendVLAN(dst, ev.VLAN[1])
			dst = append(dst, '}')
		}
	}

	// tcpsentry
	dst = append(dst, `},"tcpsentry":{"schema":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"severity":`...)
	dst = appendString(dst, ev.Severity.String())
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Count), 10)
	if ev.FlowID != 0 {
		dst = append(dst, `,"flow_id":`...)
		dst = strconv.AppendUint(dst, ev.FlowID, 10)
	}
	if ev.HistoryLen > 0 {
		dst = append(dst, `,"history":`...)
		dst = appendString(dst, ev.History[:min(int(ev.HistoryLen), len(ev.History))])
	}
	dst = append(dst, `,"capture":{"midstream":`...)
	dst = strconv.AppendBool(dst, ev.Capture&detectors.CaptureMidstream != 0)
	dst = append(dst, `,"one_sided":`...)
	dst = strconv.AppendBool(dst, ev.Capture&detectors.CaptureOneSided != 0)
	dst = append(dst, `,"loss_suspected":`...)
	dst = strconv.AppendBool(dst, ev.Capture&detectors.CaptureLossSuspected != 0)
	if ev.Capture&detectors.CaptureChecksumOffload != 0 {
		dst = append(dst, `,"checksum_offload":true`...)
	}
	dst = append(dst, `},"evidence":{`...)
	for i, x := range ev.Evidence[:ev.NEvidence] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, x.Key.String())
		dst = append(dst, ':')
		dst = appendValue(dst, x)
	}
	if n := min(int(ev.NTop), detectors.MaxTop); n > 0 {
		if ev.NEvidence > 0 {
			dst = append(dst, ',')
		}
		if ev.Type == detectors.TypeFailedConnectionRate {
			dst = append(dst, `"top_clients":[`...)
		} else {
			dst = append(dst, `"top_peers":[`...)
		}
		for i, p := range ev.Top[:n] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"ip":"`...)
			dst = detectors.Endpoint{Addr: p.Addr}.AddrOf(ev.Family).AppendTo(dst)
			dst = append(dst, `","count":`...)
			dst = strconv.AppendUint(dst, uint64(p.Count), 10)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, `}}}`...)
}

// aggregate reports whether ev is about many connections (no flow): it
// has no community_id, flow_id or history, and its source names only the
// top client's address.
func aggregate(ev *detectors.Event) bool { return ev.FlowID == 0 }

// appendValue appends an evidence value as its key's kind says.
func appendValue(dst []byte, x detectors.Evidence) []byte {
	switch x.Key.Kind() {
	case detectors.KindBool:
		return strconv.AppendBool(dst, x.Value != 0)
	case detectors.KindMilli:
		v := x.Value
		if v < 0 {
			dst = append(dst, '-')
			v = -v
		}
		dst = strconv.AppendInt(dst, v/1000, 10)
		dst = append(dst, '.')
		return appendDigits(dst, int(v%1000), 3)
	}
	return strconv.AppendInt(dst, x.Value, 10)
}

// appendTime appends capture time ns (nanoseconds since the epoch) as a
// quoted RFC 3339 UTC time with microseconds (truncated, not rounded),
// "2006-01-02T15:04:05.000000Z". It writes the digits itself: that is
// several times faster than time.Time.AppendFormat, which would otherwise
// be the biggest cost of an event. Every int64 falls in years 1677-2262.
func appendTime(dst []byte, ns int64) []byte {
	t := time.Unix(0, ns).UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	dst = append(dst, '"')
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1000, 6)
	return append(dst, 'Z', '"')
}

// appendDigits appends the width lowest decimal digits of v >= 0.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendMessage appends the quoted, escaped ECS message. The sentence is
// built in dst itself and escaped there.
func appendMessage(dst []byte, ev *detectors.Event) []byte {
	dst = append(dst, '"')
	p := len(dst)
	dst = detectors.AppendMessage(dst, ev)
	return append(escapeTail(dst, p), '"')
}

// escapeTail escapes dst[p:] in place (see appendEscaped). When anything
// needs escaping, the escaped form is appended after the raw bytes and then
// moved down over them; that needs room for both, never a scratch buffer.
func escapeTail(dst []byte, p int) []byte {
	raw := dst[p:]
	if !needsEscape(raw) {
		return dst
	}
	q := len(dst)
	dst = appendEscaped(dst, raw)
	n := copy(dst[p:], dst[q:])
	return dst[:p+n]
}

// appendEndpoint appends {"ip":"...","port":N}; port 0 (an aggregate
// event's top client) is left out.
func appendEndpoint(dst []byte, family uint8, ep detectors.Endpoint) []byte {
	dst = append(dst, `{"ip":"`...)
	dst = ep.AddrOf(family).AppendTo(dst)
	if ep.Port == 0 {
		return append(dst, `"}`...)
	}
	dst = append(dst, `","port":`...)
	dst = strconv.AppendUint(dst, uint64(ep.Port), 10)
	return append(dst, '}')
}

// appendVLAN appends {"id":"N"}: ECS keeps VLAN IDs as strings. Only the
// 12-bit VID is written, so a full 802.1Q TCI (priority and DEI bits
// included) gives the same ID as a bare VID.
func appendVLAN(dst []byte, v uint16) []byte {
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendUint(dst, uint64(v&0x0fff), 10)
	return append(dst, `"}`...)
}

// appendZeroPadded appends v in decimal, zero-padded to width digits.
func appendZeroPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	b := strconv.AppendUint(buf[:0], v, 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string; see appendEscaped.
func appendString[S []byte | string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// needsEscape reports whether appendEscaped would change s.
func needsEscape(s []byte) bool {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == '"' || b == '\\' {
				return true
			}
			i++
			continue
		}
		c, size := utf8.DecodeRune(s[i:])
		if c == utf8.RuneError && size == 1 || c == '\u2028' || c == '\u2029' {
			return true
		}
		i += size
	}
	return false
}

// appendEscaped appends the body of a JSON string holding s (RFC 8259
// section 7), with the rules of encoding/json without HTML escaping, so
// the two agree byte for byte: '"' and '\\' are backslash-escaped; \b, \f,
// \n, \r and \t get their short escapes and the other control characters
// \u00XX; each byte that is not part of valid UTF-8 becomes \ufffd, so the
// output is always valid UTF-8; U+2028 and U+2029 are escaped for
// JavaScript's sake. Everything else is copied as is.
func appendEscaped[S []byte | string](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		// A string of at most utf8.UTFMax bytes that does not escape
		// is converted on the stack.
		c, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}
