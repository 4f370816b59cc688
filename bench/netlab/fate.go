package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Fate is what one client connection attempt met on the wire, from the
// segments of its 4-tuple: a test oracle for the scenarios' checks and
// their README facts.
type Fate struct {
	Client, Server netip.AddrPort
	First          time.Time // the first SYN

	SYNs         int  // the client's SYNs (with retransmissions)
	SYNACKs      int  // the server's SYN/ACKs
	SYNACKAfter  int  // SYN/ACKs sent after the client's handshake-completing ACK
	SYNACKIdle   int  // of those, the ones sent before the client's first payload
	Refused      bool // a RST/ACK answered the SYN
	Handshake    bool // the client completed the handshake (an ACK of the server's ISN+1)
	DataSent     int  // client payload bytes, first transmissions
	DataRetrans  int  // client segments re-sending payload
	DataACKed    bool // the server acknowledged client payload
	ServerBytes  int  // server payload bytes, first transmissions
	ClientFIN    bool
	ServerFIN    bool
	ClientRST    bool
	ServerRST    bool      // besides a refusal
	HandshakeAt  time.Time // the client's handshake-completing ACK
	ClientDataAt time.Time // the client's first payload
}

// Category names a Fate in a few words.
func (f Fate) Category() string {
	switch {
	case f.Refused:
		return "refused"
	case f.SYNACKs == 0:
		return "SYN never answered"
	case f.DataSent > 0 && !f.DataACKed && f.SYNACKAfter > 0:
		return "data never ACKed, SYN/ACK re-sent after the handshake ACK"
	case f.DataSent > 0 && !f.DataACKed:
		return "data never ACKed, no SYN/ACK re-sent"
	case f.DataSent > 0 && f.ServerBytes == 0 && f.SYNACKAfter > 0:
		return "data ACKed late (after SYN/ACK re-sent), never answered"
	case f.DataSent > 0 && f.ServerBytes == 0:
		return "data ACKed, never answered"
	case f.SYNACKAfter > 0:
		return "answered after SYN/ACK re-sent"
	}
	return "answered"
}

func (f Fate) String() string {
	return fmt.Sprintf("%v: %s (%d SYN, %d SYN/ACK, %d after the handshake ACK; data %d bytes, %d re-sent, ACKed %v; answer %d bytes; FIN c/s %v/%v, RST c/s %v/%v)",
		f.Client, f.Category(), f.SYNs, f.SYNACKs, f.SYNACKAfter, f.DataSent, f.DataRetrans, f.DataACKed, f.ServerBytes,
		f.ClientFIN, f.ServerFIN, f.ClientRST, f.ServerRST)
}

// Fates returns the fate of every connection to server in tr that starts
// with a SYN, in the order of their first SYN. A 4-tuple used again
// after a RST or both FINs with a new ISN is a new attempt.
func (tr *Trace) Fates(server netip.AddrPort) []Fate {
	type st struct {
		f              *Fate
		iss, irs       uint32
		haveIRS, ended bool
		high           uint32 // client: next seq after the highest sent
		srvHigh        uint32 // server: the same
	}
	var fates []*Fate
	cur := map[netip.AddrPort]*st{}
	for _, s := range tr.Segments {
		switch {
		case s.Dst == server:
			c := cur[s.Src]
			if s.SYN && !s.ACK && (c == nil || (c.ended || c.iss != s.Seq)) {
				c = &st{f: &Fate{Client: s.Src, Server: server, First: s.Time}, iss: s.Seq, high: s.Seq + 1}
				cur[s.Src] = c
				fates = append(fates, c.f)
			}
			if c == nil {
				continue
			}
			f := c.f
			if s.SYN {
				f.SYNs++
				continue
			}
			if c.haveIRS && s.ACK && s.Ack == c.irs+1 && !f.Handshake {
				f.Handshake = true
				f.HandshakeAt = s.Time
			}
			if s.Len > 0 {
				end := s.Seq + uint32(s.Len)
				if int32(end-c.high) > 0 {
					f.DataSent += int(end - c.high)
					c.high = end
					if f.ClientDataAt.IsZero() {
						f.ClientDataAt = s.Time
					}
				} else {
					f.DataRetrans++
				}
			}
			f.ClientFIN = f.ClientFIN || s.FIN
			if s.RST {
				f.ClientRST = true
				c.ended = true
			}
			if f.ClientFIN && f.ServerFIN {
				c.ended = true
			}
		case s.Src == server:
			c := cur[s.Dst]
			if c == nil {
				continue
			}
			f := c.f
			switch {
			case s.SYN && s.ACK:
				f.SYNACKs++
				c.irs, c.haveIRS, c.srvHigh = s.Seq, true, s.Seq+1
				if f.Handshake {
					f.SYNACKAfter++
					if f.DataSent == 0 {
						f.SYNACKIdle++
					}
				}
				continue
			case s.RST && f.SYNACKs == 0 && s.ACK:
				f.Refused = true
				c.ended = true
				continue
			case s.RST:
				f.ServerRST = true
				c.ended = true
			}
			if s.ACK && f.DataSent > 0 && int32(s.Ack-(c.iss+1)) > 0 {
				f.DataACKed = true
			}
			if end := s.Seq + uint32(s.Len); s.Len > 0 && c.haveIRS && int32(end-c.srvHigh) > 0 {
				f.ServerBytes += int(end - c.srvHigh)
				c.srvHigh = end
			}
			f.ServerFIN = f.ServerFIN || s.FIN
			if f.ClientFIN && f.ServerFIN {
				c.ended = true
			}
		}
	}
	out := make([]Fate, len(fates))
	for i, f := range fates {
		out[i] = *f
	}
	return out
}

// FateCounts counts fates by Category, in a stable order of first
// appearance.
func FateCounts(fates []Fate) string {
	var order []string
	n := map[string]int{}
	for _, f := range fates {
		c := f.Category()
		if n[c] == 0 {
			order = append(order, c)
		}
		n[c]++
	}
	var b strings.Builder
	for _, c := range order {
		fmt.Fprintf(&b, "%d %s; ", n[c], c)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// ports returns the clients' ports of fates, sorted.
func ports(fates []Fate) []uint16 {
	var p []uint16
	for _, f := range fates {
		p = append(p, f.Client.Port())
	}
	slices.Sort(p)
	return p
}
