// Package events owns the wire form of a finding: schema v1, one JSON
// object per detectors.Event, with Elastic Common Schema (ECS) field names
// and everything of tcpsentry's own under "tcpsentry.*" (DESIGN.md
// section 3). The same bytes are a line on stdout/file and a NATS message
// body.
//
// The encoder is append-style, in the manner of netip.Addr.AppendTo: the
// caller owns the buffer, and AppendJSON allocates nothing when the buffer
// has room (TestAppendJSONNoAllocs proves it). It runs in the publisher,
// never on the packet path.
//
// Field names and their order are stable API. A change is a schema change:
// bump SchemaVersion and add golden files under testdata/.
//
// This package must not import ring or flowtable; only its natspub
// subpackage may import the NATS client.
package events
