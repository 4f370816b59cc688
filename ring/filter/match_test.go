package filter

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// pcap/bpf.h's opcode parts, to name the opcodes here independently of
// the table in match.go.
const (
	bpfLD, bpfLDX, bpfST, bpfSTX, bpfALU, bpfJMP, bpfRET, bpfMISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
	bpfW, bpfH, bpfB                                              = 0x00, 0x08, 0x10
	bpfIMM, bpfABS, bpfIND, bpfMEM, bpfLEN, bpfMSH                = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0
	bpfADD, bpfSUB, bpfMUL, bpfDIV, bpfOR, bpfAND, bpfLSH, bpfRSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
	bpfNEG, bpfMOD, bpfXOR                                        = 0x80, 0x90, 0xa0
	bpfJA, bpfJEQ, bpfJGT, bpfJGE, bpfJSET                        = 0x00, 0x10, 0x20, 0x30, 0x40
	bpfK, bpfX, bpfA                                              = 0x00, 0x08, 0x10
	bpfTAX, bpfTXA                                                = 0x00, 0x80
)

// libpcapOps are the opcodes libpcap's bpf_filter runs, in the order of
// its switch.
var libpcapOps = []uint16{
	bpfRET | bpfK, bpfRET | bpfA,
	bpfLD | bpfW | bpfABS, bpfLD | bpfH | bpfABS, bpfLD | bpfB | bpfABS,
	bpfLD | bpfW | bpfLEN, bpfLDX | bpfW | bpfLEN,
	bpfLD | bpfW | bpfIND, bpfLD | bpfH | bpfIND, bpfLD | bpfB | bpfIND,
	bpfLDX | bpfMSH | bpfB, bpfLD | bpfIMM, bpfLDX | bpfIMM, bpfLD | bpfMEM, bpfLDX | bpfMEM, bpfST, bpfSTX,
	bpfJMP | bpfJA,
	bpfJMP | bpfJGT | bpfK, bpfJMP | bpfJGE | bpfK, bpfJMP | bpfJEQ | bpfK, bpfJMP | bpfJSET | bpfK,
	bpfJMP | bpfJGT | bpfX, bpfJMP | bpfJGE | bpfX, bpfJMP | bpfJEQ | bpfX, bpfJMP | bpfJSET | bpfX,
	bpfALU | bpfADD | bpfX, bpfALU | bpfSUB | bpfX, bpfALU | bpfMUL | bpfX, bpfALU | bpfDIV | bpfX, bpfALU | bpfMOD | bpfX,
	bpfALU | bpfAND | bpfX, bpfALU | bpfOR | bpfX, bpfALU | bpfXOR | bpfX, bpfALU | bpfLSH | bpfX, bpfALU | bpfRSH | bpfX,
	bpfALU | bpfADD | bpfK, bpfALU | bpfSUB | bpfK, bpfALU | bpfMUL | bpfK, bpfALU | bpfDIV | bpfK, bpfALU | bpfMOD | bpfK,
	bpfALU | bpfAND | bpfK, bpfALU | bpfOR | bpfK, bpfALU | bpfXOR | bpfK, bpfALU | bpfLSH | bpfK, bpfALU | bpfRSH | bpfK,
	bpfALU | bpfNEG, bpfMISC | bpfTAX, bpfMISC | bpfTXA,
}

// TestNewOpcodes: New takes exactly the opcodes bpf_filter runs.
func TestNewOpcodes(t *testing.T) {
	var got []uint16
	for op := range 1 << 16 {
		prog := []bpf.RawInstruction{{Op: uint16(op), K: 1}, {Op: bpfRET | bpfK}, {Op: bpfRET | bpfK}}
		if _, err := New(prog); err == nil {
			got = append(got, uint16(op))
		} else if !strings.Contains(err.Error(), "is not classic BPF") {
			t.Errorf("opcode %#04x: %v", op, err)
		}
	}
	want := slices.Clone(libpcapOps)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("New takes opcodes %#04x\nwant %#04x", got, want)
	}
}

// TestNewRefuses: every program bpf_validate or the kernel's checker
// refuses, New refuses with one line, and what New refuses is what a
// KernelVLAN program needs.
func TestNewRefuses(t *testing.T) {
	ret := bpf.RawInstruction{Op: bpfRET | bpfK, K: 1}
	for _, tc := range []struct {
		name string
		prog []bpf.RawInstruction
		want string
	}{
		{"jeq true edge out", []bpf.RawInstruction{{Op: bpfJMP | bpfJEQ | bpfK, Jt: 2}, ret, ret}, "instruction 0 jumps 2 ahead, past the end of the 3-instruction program"},
		{"jgt false edge out", []bpf.RawInstruction{{Op: bpfJMP | bpfJGT | bpfX, Jf: 255}, ret}, "jumps 255 ahead"},
		{"ja out", []bpf.RawInstruction{{Op: bpfJMP | bpfJA, K: 1}, ret}, "instruction 0 jumps 1 ahead"},
		{"ja back", []bpf.RawInstruction{ret, {Op: bpfJMP | bpfJA, K: 0xffffffff}, ret}, "instruction 1 jumps 4294967295 ahead"},
		{"ld M[16]", []bpf.RawInstruction{{Op: bpfLD | bpfMEM, K: 16}, ret}, "instruction 0 uses scratch word 16; there are 16 (0 to 15)"},
		{"ldx M[16]", []bpf.RawInstruction{{Op: bpfLDX | bpfMEM, K: 16}, ret}, "scratch word 16"},
		{"st M[16]", []bpf.RawInstruction{{Op: bpfST, K: 16}, ret}, "scratch word 16"},
		{"stx M[-1]", []bpf.RawInstruction{ret, {Op: bpfSTX, K: 0xffffffff}, ret}, "instruction 1 uses scratch word 4294967295"},
		{"div #0", []bpf.RawInstruction{{Op: bpfALU | bpfDIV | bpfK}, ret}, "instruction 0 divides by the constant 0"},
		{"mod #0", []bpf.RawInstruction{{Op: bpfALU | bpfMOD | bpfK}, ret}, "divides by the constant 0"},
		{"lsh #32", []bpf.RawInstruction{{Op: bpfALU | bpfLSH | bpfK, K: 32}, ret}, "instruction 0 shifts by the constant 32 (at most 31)"},
		{"rsh #99", []bpf.RawInstruction{{Op: bpfALU | bpfRSH | bpfK, K: 99}, ret}, "shifts by the constant 99"},
		{"no ret", []bpf.RawInstruction{ret, {Op: bpfLD | bpfIMM, K: 1}}, "the program ends in instruction 1, which is not a return"},
		{"ends in a jump", []bpf.RawInstruction{{Op: bpfJMP | bpfJA}}, "past the end"},
		{"ret x", []bpf.RawInstruction{{Op: bpfRET | bpfX}}, "instruction 0 has opcode 0x0e, which is not classic BPF"},
		{"ldh #k", []bpf.RawInstruction{{Op: bpfLD | bpfH | bpfIMM}, ret}, "opcode 0x08"},
		{"ld x [k]", []bpf.RawInstruction{{Op: bpfLDX | bpfW | bpfABS}, ret}, "opcode 0x21"},
		{"ja x", []bpf.RawInstruction{{Op: bpfJMP | bpfJA | bpfX}, ret}, "opcode 0x0d"},
		{"eBPF mov", []bpf.RawInstruction{{Op: 0xb7}, ret}, "opcode 0xb7"},
		{"high byte", []bpf.RawInstruction{{Op: 0x106}}, "opcode 0x106"},
		{"vlan tag", []bpf.RawInstruction{{Op: bpfLD | bpfH | bpfABS, K: skfAdOff + 44}, ret}, "instruction 0 loads Linux ancillary data (SKF_AD_OFF+44), which only the kernel has; a program compiled with Options.KernelVLAN is for live capture"},
		{"vlan present", []bpf.RawInstruction{{Op: bpfLD | bpfB | bpfABS, K: skfAdOff + 48}, ret}, "SKF_AD_OFF+48"},
		{"ancillary len", []bpf.RawInstruction{{Op: bpfLD | bpfW | bpfABS, K: skfAdOff + 1}, ret}, "SKF_AD_OFF+1"},
	} {
		p, err := New(tc.prog)
		if err == nil {
			t.Errorf("%s: New accepted\n%s", tc.name, disasm(tc.prog))
			continue
		}
		if p != nil || !strings.HasPrefix(err.Error(), "filter: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: New: %v\nwant one line starting \"filter: \" with %q", tc.name, err, tc.want)
		}
	}

	// The edges of the ranges are accepted.
	for _, prog := range [][]bpf.RawInstruction{
		{{Op: bpfJMP | bpfJEQ | bpfK, Jt: 1, Jf: 1}, ret, ret},
		{{Op: bpfJMP | bpfJA, K: 1}, ret, ret},
		{{Op: bpfST, K: 15}, {Op: bpfLDX | bpfMEM, K: 15}, ret},
		{{Op: bpfALU | bpfLSH | bpfK, K: 31}, {Op: bpfALU | bpfMOD | bpfK, K: 1}, ret},
		{{Op: bpfLD | bpfW | bpfABS, K: skfAdOff - 1}, {Op: bpfLD | bpfW | bpfIND, K: 0xffffffff}, {Op: bpfRET | bpfA}},
	} {
		if _, err := New(prog); err != nil {
			t.Errorf("New: %v\n%s", err, disasm(prog))
		}
	}

	// A KernelVLAN program that tests the tag is the kernel's.
	prog, err := Compile("vlan 100 and tcp", linkEthernet, Options{KernelVLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(prog); err == nil || !strings.Contains(err.Error(), "Options.KernelVLAN") {
		t.Errorf("New(KernelVLAN program) = %v", err)
	}
}

// TestMatchWireLength: len, less and greater see the length on the wire;
// a wirelen below the captured length counts as the captured length.
func TestMatchWireLength(t *testing.T) {
	frame := ether(macB, macA, nil, 0x0800, make([]byte, 82)) // 96 bytes, as cut to a snap length of 96
	for _, tc := range []struct {
		expr string
		wire int
		want bool
	}{
		{"greater 1000", 1514, true},
		{"greater 1000", 1000, true}, // greater is >=
		{"greater 1000", 999, false},
		{"greater 1000", 96, false},
		{"greater 96", 0, true}, // 0 counts as the 96 captured
		{"greater 97", 0, false},
		{"less 200", 1514, false},
		{"less 200", 200, true}, // less is <=
		{"less 200", 96, true},
		{"less 95", 0, false},
		{"len > 1400", 1401, true},
		{"len > 1400", 1400, false},
		{"len = 54", 54, false}, // below the captured length: 96
		{"len = 96", 54, true},
		{"len = 1514", 1514, true},
		{"len - 14 = 1500", 1514, true},
		{"len < ip[2:2] + 14", 96, false},
	} {
		prog := mustCompile(t, tc.expr)
		p := mustNew(t, prog)
		if got := checkMatch(t, p, prog, frame, tc.wire); got != tc.want {
			t.Errorf("%q on 96 bytes, %d on the wire: %v, want %v", tc.expr, tc.wire, got, tc.want)
		}
	}

	// Past 32 bits (no capture format has such lengths): the most a
	// uint32 holds, not the low 32 bits.
	if p := mustNew(t, mustCompile(t, "greater 1000")); !p.Match(frame, 1<<32+96) {
		t.Error("greater 1000 with 2^32+96 on the wire: no match")
	}

	// ldx #len, which x/net/bpf's VM reads as ld #len: X = 1514, A = 96.
	p := mustNew(t, []bpf.RawInstruction{
		{Op: bpfLDX | bpfW | bpfLEN}, {Op: bpfLD | bpfIMM, K: 96}, {Op: bpfJMP | bpfJGT | bpfX, Jt: 1}, {Op: bpfMISC | bpfTXA}, {Op: bpfRET | bpfA},
	})
	if n := p.run(frame, 1514); n != 1514 {
		t.Errorf("ldx #len: returned %d, want 1514", n)
	}
}

// TestMatchArithmetic: the edges of the ALU ops, each against libpcap's
// bpf_filter as written and, where it can run them, x/net/bpf's VM.
func TestMatchArithmetic(t *testing.T) {
	ldx := func(k uint32) bpf.RawInstruction { return bpf.RawInstruction{Op: bpfLDX | bpfIMM, K: k} }
	lda := func(k uint32) bpf.RawInstruction { return bpf.RawInstruction{Op: bpfLD | bpfIMM, K: k} }
	alu := func(op uint16, k uint32) bpf.RawInstruction { return bpf.RawInstruction{Op: bpfALU | op, K: k} }
	retA := bpf.RawInstruction{Op: bpfRET | bpfA}
	for _, tc := range []struct {
		name string
		prog []bpf.RawInstruction
		want uint32
	}{
		// libpcap: "if (X < 32) A <<= X; else A = 0;"
		{"lsh x 31", []bpf.RawInstruction{ldx(31), lda(1), alu(bpfLSH|bpfX, 0), retA}, 0x80000000},
		{"lsh x 32", []bpf.RawInstruction{ldx(32), lda(1), alu(bpfLSH|bpfX, 0), retA}, 0},
		{"lsh x 33", []bpf.RawInstruction{ldx(33), lda(1), alu(bpfLSH|bpfX, 0), retA}, 0},
		{"rsh x 32", []bpf.RawInstruction{ldx(32), lda(0x80000000), alu(bpfRSH|bpfX, 0), retA}, 0},
		{"rsh x 2^32-1", []bpf.RawInstruction{ldx(0xffffffff), lda(0xffffffff), alu(bpfRSH|bpfX, 0), retA}, 0},
		{"rsh #31", []bpf.RawInstruction{lda(0x80000000), alu(bpfRSH|bpfK, 31), retA}, 1},
		{"div x 0", []bpf.RawInstruction{lda(7), alu(bpfDIV|bpfX, 0), {Op: bpfRET | bpfK, K: 1}}, 0},
		{"mod x 0", []bpf.RawInstruction{lda(7), alu(bpfMOD|bpfX, 0), {Op: bpfRET | bpfK, K: 1}}, 0},
		{"div x", []bpf.RawInstruction{ldx(2), lda(7), alu(bpfDIV|bpfX, 0), retA}, 3},
		{"mod #", []bpf.RawInstruction{lda(7), alu(bpfMOD|bpfK, 4), retA}, 3},
		{"neg", []bpf.RawInstruction{lda(1), alu(bpfNEG, 0), retA}, 0xffffffff},
		{"neg 2^31", []bpf.RawInstruction{lda(0x80000000), alu(bpfNEG, 0), retA}, 0x80000000},
		{"sub wraps", []bpf.RawInstruction{lda(1), alu(bpfSUB|bpfK, 2), retA}, 0xffffffff},
		{"mul wraps", []bpf.RawInstruction{lda(0x10000), alu(bpfMUL|bpfK, 0x10001), retA}, 0x10000},
		{"xor", []bpf.RawInstruction{ldx(0xff00), lda(0x0ff0), alu(bpfXOR|bpfX, 0), retA}, 0xf0f0},
		{"scratch", []bpf.RawInstruction{lda(5), {Op: bpfST, K: 15}, ldx(9), {Op: bpfSTX, K: 0}, {Op: bpfLD | bpfMEM, K: 0}, {Op: bpfLDX | bpfMEM, K: 15}, alu(bpfADD|bpfX, 0), retA}, 14},
		{"scratch starts at 0", []bpf.RawInstruction{lda(5), {Op: bpfLD | bpfMEM, K: 7}, retA}, 0},
	} {
		p := mustNew(t, tc.prog)
		if got := p.run(nil, 0); got != tc.want {
			t.Errorf("%s: %d (%#x), want %#x", tc.name, got, got, tc.want)
		}
		checkMatch(t, p, tc.prog, nil, 0)
		if vm := vmFor(tc.prog); vm != nil {
			if n, _ := vm.Run(nil); uint32(n) != tc.want {
				t.Errorf("%s: x/net/bpf's VM %d, want %#x", tc.name, n, tc.want)
			}
		}
	}
}

// TestMatchLoadsPastTheEnd: a load that ends past the captured bytes
// rejects at once, whatever the length on the wire; one that ends on the
// last byte reads it.
func TestMatchLoadsPastTheEnd(t *testing.T) {
	frame := []byte{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		op   uint16
		x, k uint32
		want uint32 // 0: rejected
	}{
		{bpfLD | bpfW | bpfABS, 0, 2, 0x03040506 + 1},
		{bpfLD | bpfW | bpfABS, 0, 3, 0},
		{bpfLD | bpfH | bpfABS, 0, 4, 0x0506 + 1},
		{bpfLD | bpfH | bpfABS, 0, 5, 0},
		{bpfLD | bpfB | bpfABS, 0, 5, 6 + 1},
		{bpfLD | bpfB | bpfABS, 0, 6, 0},
		{bpfLD | bpfW | bpfABS, 0, skfAdOff - 2, 0}, // near the top of what New takes
		{bpfLD | bpfW | bpfIND, 1, 1, 0x03040506 + 1},
		{bpfLD | bpfW | bpfIND, 2, 1, 0},
		{bpfLD | bpfH | bpfIND, 4, 0, 0x0506 + 1},
		{bpfLD | bpfH | bpfIND, 0xffffffff, 5, 0}, // x+k overflows 32 bits to 4
		{bpfLD | bpfB | bpfIND, 5, 0, 6 + 1},
		{bpfLD | bpfB | bpfIND, 0xffffffff, 1, 0}, // x+k overflows 32 bits to 0
		{bpfLDX | bpfMSH | bpfB, 0, 5, 4*6 + 1},
		{bpfLDX | bpfMSH | bpfB, 0, 6, 0},
	} {
		// The load, then A+X+1, so a load of 0 still accepts.
		prog := []bpf.RawInstruction{{Op: bpfLDX | bpfIMM, K: tc.x}, {Op: tc.op, K: tc.k}, {Op: bpfALU | bpfADD | bpfX}, {Op: bpfALU | bpfADD | bpfK, K: 1}, {Op: bpfRET | bpfA}}
		if tc.op == bpfLDX|bpfMSH|bpfB {
			prog[0] = bpf.RawInstruction{Op: bpfLD | bpfIMM}
		} else if tc.want != 0 {
			tc.want += tc.x
		}
		p := mustNew(t, prog)
		for _, wire := range wireLens(len(frame)) {
			if got := p.run(frame, uint32(max(wire, len(frame)))); got != tc.want {
				t.Errorf("op %#04x x %#x k %#x, %d on the wire: %#x, want %#x", tc.op, tc.x, tc.k, wire, got, tc.want)
			}
			checkMatch(t, p, prog, frame, wire)
		}
	}
}

// TestMatchNoAllocs: Match allocates nothing, on programs of every
// primitive and frames whole and cut.
func TestMatchNoAllocs(t *testing.T) {
	frames := corpus(t, linkEthernet)
	var progs []*Program
	for _, expr := range append(slices.Clone(benchExprs), "greater 1000", "len - 14 = ip[2:2]", "tcp[(tcp[12] >> 4) * 4:4] = 0x47455420",
		"ip[2:2] % 7 = 3", "vlan 100 and tcp port 80", "ip6 and tcp and port 80") {
		progs = append(progs, mustNew(t, mustCompile(t, expr)))
	}
	progs = append(progs, mustNew(t, nil))
	var sink int
	if n := testing.AllocsPerRun(20, func() {
		for _, p := range progs {
			for _, f := range frames[:2000] {
				if p.Match(f.data, len(f.data)+100) {
					sink++
				}
			}
		}
	}); n != 0 {
		t.Errorf("Match allocates: %v per run", n)
	}
	if sink == 0 {
		t.Error("nothing matched")
	}
}

// TestMatchRandomPrograms: random raw programs, most of them valid: New
// refuses or takes each without panicking, and what it takes Match runs
// as the test interpreter does and, where the lengths agree and the VM
// can run the program, as x/net/bpf's VM does.
func TestMatchRandomPrograms(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var taken, vmRuns int
	for range 20000 {
		prog, frame, wire := randomProgram(r.Uint32)
		p, err := New(prog)
		if err != nil {
			if p != nil || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "filter: ") {
				t.Fatalf("New: %v", err)
			}
			continue
		}
		taken++
		got := checkMatch(t, p, prog, frame, wire)
		if vm := vmFor(prog); vm != nil && wire <= len(frame) {
			vmRuns++
			if n, err := vm.Run(frame); err != nil || (n != 0) != got {
				t.Fatalf("Match %v, VM %d (%v) on % x\n%s", got, n, err, frame, disasm(prog))
			}
		}
	}
	t.Logf("New took %d, the VM ran %d", taken, vmRuns)
	// The generator must exercise both sides.
	if taken < 5000 || taken > 19000 || vmRuns < 1000 {
		t.Fatalf("New took %d of 20000 random programs, %d of them also run by the VM", taken, vmRuns)
	}
}

// FuzzMatch: as TestMatchRandomPrograms, with the fuzzer choosing the
// program, the frame and the length on the wire.
func FuzzMatch(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x06, 0, 0, 0, 1, 0, 0, 0})
	r := rand.New(rand.NewPCG(3, 4))
	for range 64 {
		b := make([]byte, 8+r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		next := func() uint32 {
			var w [4]byte
			b = b[copy(w[:], b):]
			return binary.LittleEndian.Uint32(w[:])
		}
		prog, frame, wire := randomProgram(next)
		if p, err := New(prog); err == nil {
			checkMatch(t, p, prog, frame, wire)
		} else if p != nil || strings.Contains(err.Error(), "\n") {
			t.Fatalf("New: %v, %v", p, err)
		}
	})
}

// randomProgram draws a program of up to 16 instructions, mostly of the
// opcodes bpf_filter knows with operands near the edges New checks
// (jumps near the end, scratch 15 and 16, divisors and shifts of 0 and
// 32), a frame of up to 63 bytes and a length on the wire, from next.
func randomProgram(next func() uint32) (prog []bpf.RawInstruction, frame []byte, wire int) {
	pick := func(v ...uint32) uint32 { return v[next()%uint32(len(v))] }
	n := 1 + int(next()%16)
	for i := range n {
		var ri bpf.RawInstruction
		if next()%16 == 0 {
			ri.Op = uint16(next())
		} else {
			ri.Op = libpcapOps[next()%uint32(len(libpcapOps))]
		}
		left := uint32(n - i - 1) // instructions after this one
		switch ri.Op & 0x07 {
		case bpfLD, bpfLDX:
			ri.K = pick(0, 1, 2, 3, next()%64, next()%64, next()%64, 0xffffffff, 0x7fffffff, skfAdOff-1, skfAdOff+next()%64, 15, 16, next())
		case bpfST, bpfSTX:
			ri.K = pick(0, 1, 15, 16, next()%16, next())
		case bpfALU:
			ri.K = pick(0, 1, 2, 3, 31, 32, 33, 0x80000000, 0xffffffff, next()%64, next())
		case bpfJMP:
			ri.Jt, ri.Jf = uint8(next()%(left+1)), uint8(next()%(left+1))
			ri.K = pick(0, 1, next()%(left+1), next()%(left+1), next()%64, next())
		default:
			ri.K = pick(0, 1, 0xffff, 0xffffffff, next())
		}
		prog = append(prog, ri)
	}
	if next()%16 != 0 {
		prog = append(prog, bpf.RawInstruction{Op: uint16(pick(bpfRET|bpfK, bpfRET|bpfA)), K: pick(0, 1, 0xffff, 0x40000)})
	}
	frame = make([]byte, next()%64)
	for i := range frame {
		frame[i] = byte(next())
	}
	wire = int(pick(0, uint32(len(frame)), uint32(len(frame))+1, next()%2000, next()))
	return prog, frame, wire
}

// mustCompile compiles expr for Ethernet frames.
func mustCompile(t testing.TB, expr string) []bpf.RawInstruction {
	t.Helper()
	prog, err := Compile(expr, linkEthernet, Options{})
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return prog
}
