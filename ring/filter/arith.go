package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Arithmetic: "proto[expr:size] op value" and "len". A value is an
// expression tree plus a guard, the protocol tests that must pass before
// its loads make sense (gencode.c's struct arth: statements and a block).
// The statements of one comparison are straight-line code: if any of its
// loads runs past the frame, the whole filter rejects the frame, whatever
// the order of the loads. So the tree may be computed in any order and
// constants folded, but which loads run must stay what libpcap's
// optimized code runs.

type (
	aexpr  any
	aConst uint32
	aLen   struct{}
	// aLoad reads size bytes at off+idx from the start of the frame, or,
	// with tran, at off+idx past the IPv4 header (whose length comes from
	// the IHL byte at off).
	aLoad struct {
		off  uint32
		tran bool
		size int
		idx  aexpr
	}
	aBin struct {
		op   bpf.ALUOp
		l, r aexpr
	}
	aNeg struct{ x aexpr }
)

type aval struct {
	guard node // nil: none
	e     aexpr
}

var aluOps = map[kind]bpf.ALUOp{
	kPlus: bpf.ALUOpAdd, kMinus: bpf.ALUOpSub, kStar: bpf.ALUOpMul, kSlash: bpf.ALUOpDiv,
	kPercent: bpf.ALUOpMod, kAmp: bpf.ALUOpAnd, kPipe: bpf.ALUOpOr, kCaret: bpf.ALUOpXor,
	kShl: bpf.ALUOpShiftLeft, kShr: bpf.ALUOpShiftRight,
}

func (g *gen) arith(n sx) aval {
	switch n := n.(type) {
	case sNum:
		return aval{e: aConst(n.tok.num)}
	case sLen:
		return aval{e: aLen{}}
	case sNeg:
		x := g.arith(n.x)
		if c, ok := x.e.(aConst); ok {
			return aval{x.guard, aConst(-uint32(c))}
		}
		return aval{x.guard, aNeg{x.e}}
	case sBin:
		// gen_arth keeps only the left operand's guard: "1 + tcp[0] = 2"
		// has no protocol test at all in libpcap, so none here either.
		l, r := g.arith(n.l), g.arith(n.r)
		return aval{l.guard, fold(n.op, aluOps[n.op.kind], l.e, r.e)}
	case sLoad:
		return g.loadAt(n)
	}
	panic("unreachable: parser makes no other arithmetic nodes")
}

// fold builds l op r, computing it when both are constants and applying
// the identities libpcap's optimizer applies (x*0 and x&0 are 0, so are
// 0*x, 0/x, 0%x, 0&x, 0<<x, 0>>x; their loads vanish with them).
func fold(t token, op bpf.ALUOp, l, r aexpr) aexpr {
	rc, rok := r.(aConst)
	lc, lok := l.(aConst)
	if rok {
		switch {
		case rc == 0 && (op == bpf.ALUOpDiv || op == bpf.ALUOpMod):
			failAt(t, "divides by zero")
		case rc > 31 && (op == bpf.ALUOpShiftLeft || op == bpf.ALUOpShiftRight):
			failAt(t, "shifts by more than 31 bits")
		}
	}
	if lok && rok {
		a, b := uint32(lc), uint32(rc)
		switch op {
		case bpf.ALUOpAdd:
			return aConst(a + b)
		case bpf.ALUOpSub:
			return aConst(a - b)
		case bpf.ALUOpMul:
			return aConst(a * b)
		case bpf.ALUOpDiv:
			return aConst(a / b)
		case bpf.ALUOpMod:
			return aConst(a % b)
		case bpf.ALUOpAnd:
			return aConst(a & b)
		case bpf.ALUOpOr:
			return aConst(a | b)
		case bpf.ALUOpXor:
			return aConst(a ^ b)
		case bpf.ALUOpShiftLeft:
			return aConst(a << b)
		case bpf.ALUOpShiftRight:
			return aConst(a >> b)
		}
	}
	if rok && rc == 0 {
		switch op {
		case bpf.ALUOpMul, bpf.ALUOpAnd:
			return aConst(0)
		case bpf.ALUOpAdd, bpf.ALUOpSub, bpf.ALUOpOr, bpf.ALUOpXor, bpf.ALUOpShiftLeft, bpf.ALUOpShiftRight:
			return l
		}
	}
	if lok && lc == 0 {
		switch op {
		case bpf.ALUOpMul, bpf.ALUOpDiv, bpf.ALUOpMod, bpf.ALUOpAnd, bpf.ALUOpShiftLeft, bpf.ALUOpShiftRight:
			return aConst(0)
		}
	}
	return aBin{op, l, r}
}

// loadAt is proto[idx:size], gen_load: where the offset counts from, and
// the guard that comes before the load.
func (g *gen) loadAt(n sLoad) aval {
	idx := g.arith(n.idx)
	size := 1
	if n.size != nil {
		switch n.size.num {
		case 1, 2, 4:
			size = int(n.size.num)
		default:
			failAt(*n.size, "is not a load size (1, 2 or 4)")
		}
	}
	p := pnames[n.proto.kind]
	switch p {
	case pLink:
		return aval{idx.guard, aLoad{off: 0, size: size, idx: idx.e}}
	case pIP, pARP, pRARP, pIP6:
		return aval{and(idx.guard, g.abbrev(n.proto)), aLoad{off: g.pl(0), size: size, idx: idx.e}}
	case pTCP, pUDP, pSCTP, pICMP, pIGMP, pIGRP, pPIM, pVRRP, pCARP:
		// IPv4 only, and not a later fragment. libpcap's order: ip, the
		// index's guard, the protocol, the fragment offset.
		ip := g.linktype(etherIP)
		guard := and(ip, and(idx.guard, and(g.abbrev(n.proto), g.notFragment())))
		return aval{guard, aLoad{off: g.pl(0), tran: true, size: size, idx: idx.e}}
	case pICMP6:
		// A fixed 40-byte IPv6 header, and ICMPv6 as its next header.
		guard := and(and(idx.guard, g.linktype(etherIPv6)), cmp(g.pl(6), 1, protoICMPv6))
		return aval{guard, aLoad{off: g.pl(40), size: size, idx: idx.e}}
	}
	failAt(n.proto, "cannot be indexed (ether, ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp, igrp, pim, vrrp and carp can)")
	return aval{}
}

// relation is "l op r", gen_relation: both guards, then the comparison.
func (g *gen) relation(n sRel) node {
	l, r := g.arith(n.l), g.arith(n.r)
	var cond bpf.JumpTest
	negate := false
	switch n.op.kind {
	case kGT:
		cond = bpf.JumpGreaterThan
	case kGE:
		cond = bpf.JumpGreaterOrEqual
	case kEQ:
		cond = bpf.JumpEqual
	case kLE:
		cond, negate = bpf.JumpGreaterThan, true
	case kLT:
		cond, negate = bpf.JumpGreaterOrEqual, true
	case kNE:
		cond, negate = bpf.JumpEqual, true
	}
	var t node
	lc, lok := l.e.(aConst)
	rc, rok := r.e.(aConst)
	// libpcap computes l - r for = and !=, and compares l with r
	// otherwise; its value numbers follow.
	vn := exprString(l.e)
	if cond == bpf.JumpEqual {
		vn = "(" + vn + ")-(" + exprString(r.e) + ")"
	}
	switch {
	case lok && rok:
		t = nConst(compare(cond, uint32(lc), uint32(rc)))
	case rok:
		t = g.test(l.e, nil, cond, uint32(rc), vn)
	default:
		t = g.test(l.e, r.e, cond, 0, vn+" ? "+exprString(r.e))
	}
	if negate {
		t = not(t)
	}
	return and(and(l.guard, r.guard), t)
}

func compare(cond bpf.JumpTest, a, b uint32) bool {
	switch cond {
	case bpf.JumpEqual:
		return a == b
	case bpf.JumpGreaterThan:
		return a > b
	case bpf.JumpGreaterOrEqual:
		return a >= b
	case bpf.JumpBitsSet:
		return a&b != 0
	}
	panic("unreachable: only these tests are generated")
}

// test compares l with r, or with k when r is nil. "x & m != 0" becomes
// jset, the form libpcap's optimizer leaves.
func (g *gen) test(l, r aexpr, cond bpf.JumpTest, k uint32, vn string) node {
	var s []bpf.Instruction
	if r == nil {
		if b, ok := l.(aBin); ok && b.op == bpf.ALUOpAnd && cond == bpf.JumpEqual && k == 0 {
			if m, ok := b.r.(aConst); ok {
				s = g.value(s, b.l)
				return not(nTest{stmts: s, cond: bpf.JumpBitsSet, k: uint32(m), vn: vn})
			}
		}
		s = g.value(s, l)
		return nTest{stmts: s, cond: cond, k: k, vn: vn}
	}
	s = g.valueX(s, l, r)
	return nTest{stmts: s, cond: cond, x: true, vn: vn}
}

// exprString names what e computes, for value numbering.
func exprString(e aexpr) string {
	switch e := e.(type) {
	case aConst:
		return fmt.Sprint("#", uint32(e))
	case aLen:
		return "len"
	case aLoad:
		base := fmt.Sprint(e.off)
		if e.tran {
			base += "+ihl"
		}
		return fmt.Sprintf("[%s+%s:%d]", base, exprString(e.idx), e.size)
	case aBin:
		return fmt.Sprintf("(%s %d %s)", exprString(e.l), e.op, exprString(e.r))
	case aNeg:
		return "-" + exprString(e.x)
	}
	panic("unreachable: arithmetic nodes are exhaustive")
}

// valueX leaves l in A and r in X.
func (g *gen) valueX(s []bpf.Instruction, l, r aexpr) []bpf.Instruction {
	if !usesX(l) {
		s = g.value(s, r)
		s = append(s, bpf.TAX{})
		return g.value(s, l)
	}
	m := g.alloc()
	s = g.value(s, r)
	s = append(s, bpf.StoreScratch{Src: bpf.RegA, N: m})
	s = g.value(s, l)
	g.regs--
	return append(s, bpf.LoadScratch{Dst: bpf.RegX, N: m})
}

func (g *gen) alloc() int {
	if g.regs == 16 {
		fail("arithmetic expression needs more than BPF's 16 scratch words")
	}
	g.regs++
	return g.regs - 1
}

// usesX reports whether computing e changes X.
func usesX(e aexpr) bool {
	switch e := e.(type) {
	case aConst, aLen:
		return false
	case aLoad:
		if c, ok := e.idx.(aConst); ok && c <= 0xffff {
			return e.tran
		}
		return true
	}
	return true
}

// value appends code that leaves e in A. It may change X and the scratch
// words from g.regs up.
func (g *gen) value(s []bpf.Instruction, e aexpr) []bpf.Instruction {
	switch e := e.(type) {
	case aConst:
		return append(s, bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(e)})
	case aLen:
		return append(s, bpf.LoadExtension{Num: bpf.ExtLen})
	case aLoad:
		// A small constant index folds into the load's offset; a large
		// one (ip[-1]) is added at run time as libpcap does, where the
		// sum wraps at 32 bits the same way.
		if c, ok := e.idx.(aConst); ok && c <= 0xffff {
			if e.tran {
				return append(s, bpf.LoadMemShift{Off: e.off}, bpf.LoadIndirect{Off: e.off + uint32(c), Size: e.size})
			}
			return append(s, bpf.LoadAbsolute{Off: e.off + uint32(c), Size: e.size})
		}
		s = g.value(s, e.idx)
		if e.tran {
			m := g.alloc()
			s = append(s, bpf.StoreScratch{Src: bpf.RegA, N: m}, bpf.LoadMemShift{Off: e.off},
				bpf.LoadScratch{Dst: bpf.RegA, N: m}, bpf.ALUOpX{Op: bpf.ALUOpAdd})
			g.regs--
		}
		return append(s, bpf.TAX{}, bpf.LoadIndirect{Off: e.off, Size: e.size})
	case aBin:
		if c, ok := e.r.(aConst); ok {
			s = g.value(s, e.l)
			return append(s, bpf.ALUOpConstant{Op: e.op, Val: uint32(c)})
		}
		s = g.valueX(s, e.l, e.r)
		return append(s, bpf.ALUOpX{Op: e.op})
	case aNeg:
		// 0 - x: x/net/bpf's VM has no NegateA.
		s = g.value(s, e.x)
		return append(s, bpf.TAX{}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.ALUOpX{Op: bpf.ALUOpSub})
	}
	panic("unreachable: arithmetic nodes are exhaustive")
}
