package detectors

import "github.com/tcpsentry/tcpsentry/flowtable"

// synUnanswered: a SYN got neither SYN/ACK nor RST within the handshake
// timeout, by its SynRetransmits-th retransmission, or before the flow
// left the table (end of replay, eviction). at is when the evidence was
// complete: the retransmission's time, the timer's deadline, or the
// connection's last packet.
func (s *Set) synUnanswered(c *flowtable.Conn, at int64) {
	var e Event
	if !s.begin(&e, c, TypeSynUnanswered) {
		return
	}
	if at < c.LastSynTS {
		at = c.LastSynTS
	}
	e.Cause = CauseSilentDrop
	e.Severity = SeverityWarning
	e.Start, e.End = c.SynTS, at
	e.AddEvidence(EvSynRetransmits, int64(c.Side[flowtable.Client].Syns)-1)
	e.AddEvidence(EvWaitMs, ms(at-c.SynTS))
	s.emit(&e)
}
