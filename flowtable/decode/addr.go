package decode

import "net/netip"

// SrcAddr returns the source address as a netip.Addr (the zero Addr if p
// holds no IP packet). For event encoding, not for the per-packet path.
func (p *Packet) SrcAddr() netip.Addr { return p.addr(&p.Src) }

// DstAddr returns the destination address as a netip.Addr (the zero Addr
// if p holds no IP packet).
func (p *Packet) DstAddr() netip.Addr { return p.addr(&p.Dst) }

func (p *Packet) addr(a *[16]byte) netip.Addr {
	switch p.Family {
	case 4:
		return netip.AddrFrom4([4]byte(a[:4]))
	case 6:
		return netip.AddrFrom16(*a)
	}
	return netip.Addr{}
}
