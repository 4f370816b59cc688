package filter

import (
	"encoding/binary"
	"fmt"
	"math"

	"golang.org/x/net/bpf"
)

// Program runs a classic BPF program in software, for replay, with the
// semantics of libpcap 1.10's bpf_filter (what tcpdump -r applies):
//
//   - the program reads the captured bytes, and a load (absolute,
//     indirect or ldx msh) that runs past them rejects the frame at once;
//   - "len" (ld #len, ldx #len) is the frame's length on the wire, so
//     len, less and greater see what they see in tcpdump -r on a capture
//     cut to a snap length;
//   - division or modulo by a zero X rejects the frame;
//   - a shift by X of 32 or more leaves 0 in A: libpcap tests for it
//     rather than leave it to C (on amd64 a bare C shift takes the count
//     mod 32), Go's shifts give 0 too, so x/net/bpf's VM agrees, and
//     ring's TestReplayFilterWireLength checks it against tcpdump -r;
//   - a shift by a constant of 32 or more is refused by New, as the
//     kernel's checker and later libpcap's bpf_validate refuse it
//     (libpcap 1.10 leaves it to C, and its compiler never emits one).
//
// A Program holds no mutable state: it is safe for concurrent use.
type Program struct {
	insns []insn // nil: no filter, everything matches
}

// insn is one validated instruction. op is decoded from the raw opcode
// so that Match switches over a small dense range (a jump table).
type insn struct {
	op     op
	jt, jf uint8
	k      uint32
}

type op uint8

const (
	// In the order of the switch of libpcap's bpf_filter, to compare.
	opRetK op = iota
	opRetA
	opLdW
	opLdH
	opLdB
	opLdLen
	opLdxLen
	opLdIndW
	opLdIndH
	opLdIndB
	opLdxMsh
	opLdImm
	opLdxImm
	opLdMem
	opLdxMem
	opSt
	opStx
	opJa
	opJgtK
	opJgeK
	opJeqK
	opJsetK
	opJgtX
	opJgeX
	opJeqX
	opJsetX
	opAddX
	opSubX
	opMulX
	opDivX
	opModX
	opAndX
	opOrX
	opXorX
	opLshX
	opRshX
	opAddK
	opSubK
	opMulK
	opDivK
	opModK
	opAndK
	opOrK
	opXorK
	opLshK
	opRshK
	opNeg
	opTax
	opTxa
)

// ops maps the raw opcodes libpcap's bpf_filter runs (pcap/bpf.h) to
// ops; any other opcode is refused.
var ops = map[uint16]op{
	0x06: opRetK, // ret #k
	0x16: opRetA, // ret a
	0x20: opLdW,  // ld [k]
	0x28: opLdH,  // ldh [k]
	0x30: opLdB,  // ldb [k]
	0x80: opLdLen,
	0x81: opLdxLen,
	0x40: opLdIndW,
	0x48: opLdIndH,
	0x50: opLdIndB,
	0xb1: opLdxMsh, // ldxb 4*([k]&0xf)
	0x00: opLdImm,
	0x01: opLdxImm,
	0x60: opLdMem,
	0x61: opLdxMem,
	0x02: opSt,
	0x03: opStx,
	0x05: opJa,
	0x25: opJgtK,
	0x35: opJgeK,
	0x15: opJeqK,
	0x45: opJsetK,
	0x2d: opJgtX,
	0x3d: opJgeX,
	0x1d: opJeqX,
	0x4d: opJsetX,
	0x0c: opAddX,
	0x1c: opSubX,
	0x2c: opMulX,
	0x3c: opDivX,
	0x9c: opModX,
	0x5c: opAndX,
	0x4c: opOrX,
	0xac: opXorX,
	0x6c: opLshX,
	0x7c: opRshX,
	0x04: opAddK,
	0x14: opSubK,
	0x24: opMulK,
	0x34: opDivK,
	0x94: opModK,
	0x54: opAndK,
	0x44: opOrK,
	0xa4: opXorK,
	0x64: opLshK,
	0x74: opRshK,
	0x84: opNeg,
	0x07: opTax,
	0x87: opTxa,
}

// skfAdOff is SKF_AD_OFF: an absolute load at or above it reads Linux
// socket metadata (the VLAN tag, the protocol, ...), not the frame.
const skfAdOff = 0xfffff000

// New validates prog once, as libpcap's bpf_validate and the kernel's
// checker do, so that Match needs no checks but those on the frame's
// bytes: every opcode is one bpf_filter knows, every jump lands inside
// the program, scratch words are 0 to 15, no division or modulo by a
// constant 0 and no shift by a constant over 31, and the last
// instruction returns. A program that reads ancillary data (Options.
// KernelVLAN) is refused: it is for the kernel, which has the metadata.
// A nil or empty prog matches every frame.
func New(prog []bpf.RawInstruction) (*Program, error) {
	if len(prog) == 0 {
		return &Program{}, nil
	}
	insns := make([]insn, len(prog))
	n := uint64(len(prog))
	for i, ri := range prog {
		o, ok := ops[ri.Op]
		if !ok {
			return nil, fmt.Errorf("filter: instruction %d has opcode 0x%02x, which is not classic BPF", i, ri.Op)
		}
		next := uint64(i) + 1 // jumps count from the next instruction
		switch o {
		case opLdW, opLdH, opLdB:
			if ri.K >= skfAdOff {
				return nil, fmt.Errorf("filter: instruction %d loads Linux ancillary data (SKF_AD_OFF+%d), which only the kernel has; a program compiled with Options.KernelVLAN is for live capture", i, ri.K-skfAdOff)
			}
		case opLdMem, opLdxMem, opSt, opStx:
			if ri.K >= 16 {
				return nil, fmt.Errorf("filter: instruction %d uses scratch word %d; there are 16 (0 to 15)", i, ri.K)
			}
		case opDivK, opModK:
			if ri.K == 0 {
				return nil, fmt.Errorf("filter: instruction %d divides by the constant 0", i)
			}
		case opLshK, opRshK:
			if ri.K >= 32 {
				return nil, fmt.Errorf("filter: instruction %d shifts by the constant %d (at most 31)", i, ri.K)
			}
		case opJa:
			if next+uint64(ri.K) >= n {
				return nil, fmt.Errorf("filter: instruction %d jumps %d ahead, past the end of the %d-instruction program", i, ri.K, n)
			}
		case opJgtK, opJgeK, opJeqK, opJsetK, opJgtX, opJgeX, opJeqX, opJsetX:
			if next+uint64(max(ri.Jt, ri.Jf)) >= n {
				return nil, fmt.Errorf("filter: instruction %d jumps %d ahead, past the end of the %d-instruction program", i, max(ri.Jt, ri.Jf), n)
			}
		}
		insns[i] = insn{op: o, jt: ri.Jt, jf: ri.Jf, k: ri.K}
	}
	if last := insns[n-1].op; last != opRetK && last != opRetA {
		return nil, fmt.Errorf("filter: the program ends in instruction %d, which is not a return", n-1)
	}
	return &Program{insns: insns}, nil
}

// Match reports whether the program accepts frame, the bytes captured of
// a frame whose length on the wire was wirelen ("len", "less" and
// "greater" see wirelen, as in tcpdump -r). A wirelen below len(frame)
// counts as len(frame). Match allocates nothing.
func (p *Program) Match(frame []byte, wirelen int) bool {
	if p == nil || len(p.insns) == 0 {
		return true
	}
	wl := uint32(min(uint64(max(wirelen, len(frame))), math.MaxUint32))
	return p.run(frame, wl) != 0
}

// run interprets the program. New has checked opcodes, jumps, scratch
// indexes, constant divisors and shifts, so only the frame's bounds are
// checked here. The masks on scratch indexes, and the loads' k+size
// checks before slicing frame[k:k+size], let the compiler drop its own
// bounds checks.
func (p *Program) run(frame []byte, wirelen uint32) uint32 {
	var a, x uint32
	var mem [16]uint32
	n := uint64(len(frame))
	insns := p.insns
	for pc := 0; ; pc++ {
		in := &insns[pc]
		switch in.op {
		case opRetK:
			return in.k
		case opRetA:
			return a
		case opLdW:
			k := uint64(in.k)
			if k+4 > n {
				return 0
			}
			a = binary.BigEndian.Uint32(frame[k : k+4])
		case opLdH:
			k := uint64(in.k)
			if k+2 > n {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(frame[k : k+2]))
		case opLdB:
			k := uint64(in.k)
			if k >= n {
				return 0
			}
			a = uint32(frame[k])
		case opLdLen:
			a = wirelen
		case opLdxLen:
			x = wirelen
		case opLdIndW:
			k := uint64(x) + uint64(in.k)
			if k+4 > n {
				return 0
			}
			a = binary.BigEndian.Uint32(frame[k : k+4])
		case opLdIndH:
			k := uint64(x) + uint64(in.k)
			if k+2 > n {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(frame[k : k+2]))
		case opLdIndB:
			k := uint64(x) + uint64(in.k)
			if k >= n {
				return 0
			}
			a = uint32(frame[k])
		case opLdxMsh:
			k := uint64(in.k)
			if k >= n {
				return 0
			}
			x = uint32(frame[k]&0xf) << 2
		case opLdImm:
			a = in.k
		case opLdxImm:
			x = in.k
		case opLdMem:
			a = mem[in.k&15]
		case opLdxMem:
			x = mem[in.k&15]
		case opSt:
			mem[in.k&15] = a
		case opStx:
			mem[in.k&15] = x
		case opJa:
			pc += int(in.k)
		case opJgtK:
			pc += jump(a > in.k, in)
		case opJgeK:
			pc += jump(a >= in.k, in)
		case opJeqK:
			pc += jump(a == in.k, in)
		case opJsetK:
			pc += jump(a&in.k != 0, in)
		case opJgtX:
			pc += jump(a > x, in)
		case opJgeX:
			pc += jump(a >= x, in)
		case opJeqX:
			pc += jump(a == x, in)
		case opJsetX:
			pc += jump(a&x != 0, in)
		case opAddX:
			a += x
		case opSubX:
			a -= x
		case opMulX:
			a *= x
		case opDivX:
			if x == 0 {
				return 0
			}
			a /= x
		case opModX:
			if x == 0 {
				return 0
			}
			a %= x
		case opAndX:
			a &= x
		case opOrX:
			a |= x
		case opXorX:
			a ^= x
		case opLshX:
			a <<= x // 0 for x >= 32, as libpcap's check gives
		case opRshX:
			a >>= x
		case opAddK:
			a += in.k
		case opSubK:
			a -= in.k
		case opMulK:
			a *= in.k
		case opDivK:
			a /= in.k
		case opModK:
			a %= in.k
		case opAndK:
			a &= in.k
		case opOrK:
			a |= in.k
		case opXorK:
			a ^= in.k
		case opLshK:
			a <<= in.k
		case opRshK:
			a >>= in.k
		case opNeg:
			a = -a
		case opTax:
			x = a
		case opTxa:
			a = x
		}
	}
}

// jump is a conditional jump's offset.
func jump(taken bool, in *insn) int {
	if taken {
		return int(in.jt)
	}
	return int(in.jf)
}
