package netlab

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// Conn summarises one TCP connection (4-tuple) of a capture: a test
// oracle for the lab's scenarios, decoded with gopacket — not the
// sensor's decoder.
type Conn struct {
	// Client sent the first SYN; without one the higher port is taken as
	// the client.
	Client, Server netip.AddrPort

	SYNs, SYNACKs            int // client SYNs (with retransmissions), server SYN/ACKs
	ClientFINs, ServerFINs   int
	ClientRSTs, ServerRSTs   int
	ServerRSTACKs            int // server RSTs with ACK set (a refusal answers the SYN so)
	ClientBytes, ServerBytes int // TCP payload bytes
	Packets                  int
	First, Last              time.Time
}

// Outcomes of Conn.Outcome.
const (
	OutcomeRefused    = "refused"    // SYN answered by RST/ACK
	OutcomeUnanswered = "unanswered" // SYN(s), no answer at all
	OutcomeFIN        = "fin"        // handshake, both sides' FINs, no RST
	OutcomeRST        = "rst"        // handshake, then ended by a RST
	OutcomeOpen       = "open"       // anything else (still open, one-sided, ...)
)

// Outcome classifies c.
func (c Conn) Outcome() string {
	switch {
	case c.SYNs > 0 && c.SYNACKs == 0 && c.ServerRSTACKs > 0:
		return OutcomeRefused
	case c.SYNs > 0 && c.SYNACKs == 0 && c.ServerRSTs == 0 && c.ServerBytes == 0 && c.ServerFINs == 0:
		return OutcomeUnanswered
	case c.SYNACKs > 0 && c.ClientRSTs+c.ServerRSTs > 0:
		return OutcomeRST
	case c.SYNACKs > 0 && c.ClientFINs > 0 && c.ServerFINs > 0:
		return OutcomeFIN
	}
	return OutcomeOpen
}

// String is one line: "client A -> server B: outcome (counts)".
func (c Conn) String() string {
	return fmt.Sprintf("client %s -> server %s: %s (%d packets, %d SYN, %d SYN/ACK, FIN c/s %d/%d, RST c/s %d/%d, payload c/s %d/%d bytes)",
		c.Client, c.Server, c.Outcome(), c.Packets, c.SYNs, c.SYNACKs,
		c.ClientFINs, c.ServerFINs, c.ClientRSTs, c.ServerRSTs, c.ClientBytes, c.ServerBytes)
}

// Summarize reads a pcap file (gzip-compressed or not; any link type
// gopacket decodes: Ethernet, LINUX_SLL, LINUX_SLL2, raw IP) and returns
// its TCP connections in the order of their first packet. It also returns
// the file's link type.
func Summarize(path string) ([]Conn, layers.LinkType, error) {
	tr, err := ReadTrace(path)
	if err != nil {
		return nil, 0, err
	}
	return tr.Conns, tr.Link, nil
}

// connsOf groups segments by 4-tuple, in the order of their first segment.
func connsOf(segs []Segment) []Conn {
	type key struct{ a, b netip.AddrPort }
	index := map[key]int{}
	var conns []Conn
	for _, s := range segs {
		from, to := s.Src, s.Dst
		k := key{from, to}
		if strings.Compare(from.String(), to.String()) > 0 {
			k = key{to, from}
		}
		i, ok := index[k]
		if !ok {
			c := Conn{Client: from, Server: to, First: s.Time}
			if !(s.SYN && !s.ACK) && from.Port() < to.Port() {
				c.Client, c.Server = to, from
			}
			conns = append(conns, c)
			i = len(conns) - 1
			index[k] = i
		}
		c := &conns[i]
		c.Packets++
		c.Last = s.Time
		n := s.Len
		if from == c.Client {
			if s.SYN && !s.ACK {
				c.SYNs++
			}
			if s.FIN {
				c.ClientFINs++
			}
			if s.RST {
				c.ClientRSTs++
			}
			c.ClientBytes += n
			continue
		}
		if s.SYN && s.ACK {
			c.SYNACKs++
		}
		if s.FIN {
			c.ServerFINs++
		}
		if s.RST {
			c.ServerRSTs++
			if s.ACK {
				c.ServerRSTACKs++
			}
		}
		c.ServerBytes += n
	}
	return conns
}
