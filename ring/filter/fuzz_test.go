package filter

import (
	"testing"

	"golang.org/x/net/bpf"
)

// FuzzCompile: no input makes Compile panic, and whatever it compiles is
// a valid program: at most BPF_MAXINSNS instructions, every jump inside
// it, accepted by New unless it reads VLAN metadata, and Match agrees
// with the test interpreter on it.
func FuzzCompile(f *testing.F) {
	for _, e := range differentialExprs {
		f.Add(e)
	}
	for _, e := range []string{"", "(", ")", "!", "not", "port 80 or (", "tcp[", "tcp[13:", "ip[0] = ", "1:2:3:", "::", "$1",
		`\`, "host 1.2.3.4/", "net 10 mask", "vlan 1 and vlan 2 and vlan 3", "- - - 1 = 1", "ip6 net ::/", "ether proto \\"} {
		f.Add(e)
	}
	frames := [][]byte{nil, make([]byte, 14), ether(macB, macA, nil, 0x0800, make([]byte, 60))}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, link := range allLinks {
			for _, kv := range []bool{false, true} {
				prog, err := Compile(expr, link, Options{KernelVLAN: kv})
				if err != nil || prog == nil {
					continue
				}
				if len(prog) > maxInsns {
					t.Fatalf("%q: %d instructions", expr, len(prog))
				}
				insns, ok := bpf.Disassemble(prog)
				if !ok {
					t.Fatalf("%q: does not disassemble:\n%s", expr, disasm(prog))
				}
				if _, err := bpf.Assemble(insns); err != nil {
					t.Fatalf("%q: %v", expr, err)
				}
				p, err := New(prog)
				if err != nil {
					if kv {
						continue // ancillary loads: for the kernel only
					}
					t.Fatalf("%q on link %d: New: %v\n%s", expr, link, err, disasm(prog))
				}
				for _, fr := range frames {
					for _, wire := range wireLens(len(fr)) {
						checkMatch(t, p, prog, fr, wire)
					}
				}
			}
		}
	})
}
