package detectors

import "github.com/tcpsentry/tcpsentry/flowtable"

// connectionRefused: the server answered the client's SYN with a RST/ACK
// (ack = ISN+1) before any SYN/ACK: nothing listens on the port
// (seeds/002). The table flags the segment as SegRSTToSYN.
func (s *Set) connectionRefused(c *flowtable.Conn, ts int64) {
	var e Event
	if !s.begin(&e, c, TypeConnectionRefused) {
		return
	}
	e.Cause = CauseNoListener
	e.Severity = SeverityNotice
	e.Start, e.End = c.SynTS, ts
	e.AddEvidence(EvSynRetransmits, int64(c.Side[flowtable.Client].Syns)-1)
	e.AddEvidence(EvRstDelayMs, ms(ts-c.LastSynTS))
	s.emit(&e)
}
