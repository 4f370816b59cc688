package filter

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/net/bpf"
)

// With KernelVLAN the outer tag is packet metadata. x/net/bpf's VM cannot
// run the ancillary loads, so the programs are checked by shape, then run
// in this package's test interpreter with the metadata filled in.
//
// libpcap 1.10 on a live Linux socket (tcpdump -i lo -d 'vlan 100')
// compiles the first vlan as
//
//	ldb [vlanp]; jeq #1 -> tag      ; metadata says tagged
//	ldh [12]; jeq #0x8100/#0x88a8/#0x9100 -> tag, else fail
//	tag: ldb [vlanp]; jeq #1 ? ldh [vlan_tci] : ldh [14]; and #0xfff; jeq #100
//
// and, when the metadata says untagged, adds 4 at run time to the
// offsets of everything after it (scratch words M[0], M[1]). Ours keeps
// the metadata test only and shifts nothing. On an AF_PACKET socket the
// kernel always moves an 802.1Q or 802.1ad outer tag into the metadata,
// so libpcap's in-frame branch only catches an outer 0x9100 tag (ours does
// not), and its run-time shift is what gives libpcap's known quirk:
// "not vlan and ip" reads the type at 16 in untagged frames. A later
// "vlan" (an inner tag) is read in the frame at unshifted offsets, the
// numbers libpcap's run-time offsets hold when the metadata has the tag.
func TestKernelVLANShape(t *testing.T) {
	present := bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}
	tag := bpf.LoadExtension{Num: bpf.ExtVLANTag}
	for _, tc := range []struct {
		expr string
		want []bpf.Instruction
	}{
		{"vlan", []bpf.Instruction{
			present,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1, SkipTrue: 1},
			bpf.RetConstant{Val: defaultSnaplen},
			bpf.RetConstant{Val: 0},
		}},
		{"vlan 100", []bpf.Instruction{
			present,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 1, SkipTrue: 4},
			tag,
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 100, SkipTrue: 1},
			bpf.RetConstant{Val: defaultSnaplen},
			bpf.RetConstant{Val: 0},
		}},
	} {
		prog, err := Compile(tc.expr, linkEthernet, Options{KernelVLAN: true})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := bpf.Disassemble(prog)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("%q:\n%s\nwant\n%v", tc.expr, disasm(prog), tc.want)
		}
	}

	// "vlan 100 and tcp port 80": the tag test, then the port tests at
	// untagged offsets: type at 12, IPv4 header at 14, IPv6 ports at 54.
	prog, err := Compile("vlan 100 and tcp port 80", linkEthernet, Options{KernelVLAN: true})
	if err != nil {
		t.Fatal(err)
	}
	insns, _ := bpf.Disassemble(prog)
	if len(insns) < 5 || insns[0] != present || insns[2] != tag || insns[3] != (bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff}) {
		t.Fatalf("tag test missing:\n%s", disasm(prog))
	}
	loads := map[bpf.Instruction]bool{}
	for _, in := range insns[5:] {
		switch in.(type) {
		case bpf.LoadAbsolute, bpf.LoadIndirect, bpf.LoadMemShift:
			loads[in] = true
		case bpf.LoadExtension:
			t.Errorf("ancillary load after the tag test:\n%s", disasm(prog))
		}
	}
	for _, want := range []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2}, bpf.LoadAbsolute{Off: 23, Size: 1}, bpf.LoadAbsolute{Off: 20, Size: 1},
		bpf.LoadAbsolute{Off: 54, Size: 2}, bpf.LoadAbsolute{Off: 56, Size: 2}, bpf.LoadMemShift{Off: 14},
		bpf.LoadIndirect{Off: 14, Size: 2}, bpf.LoadIndirect{Off: 16, Size: 2},
	} {
		if !loads[want] {
			t.Errorf("no %v in\n%s", want, disasm(prog))
		}
	}
	for in := range loads {
		if a, ok := in.(bpf.LoadAbsolute); ok && a.Off == 16 {
			t.Errorf("type read at the tagged offset 16:\n%s", disasm(prog))
		}
	}
}

// TestKernelVLANMatchesFrameVLAN: a frame whose outer tag the kernel took
// into metadata must get, from the KernelVLAN program, the verdict the
// file program (libpcap's semantics, checked by TestDifferential) gives
// the frame with its tag.
func TestKernelVLANMatchesFrameVLAN(t *testing.T) {
	exprs := []string{
		"vlan", "vlan 100", "vlan 200", "vlan 100 and tcp port 80", "vlan and ip", "vlan and ip6 and tcp",
		"not vlan", "vlan 100 and host 10.0.0.1", "vlan and vlan 200", "vlan 100 and vlan 200 and tcp[13] & 4 != 0",
		"vlan 200 or vlan 100", "vlan and udp port 53", "vlan and ether proto 0x800",
	}
	var tagged []frame
	for _, p := range packets(t) {
		for _, f := range wrap(linkEthernet, p) {
			tpid := binary.BigEndian.Uint16(f.data[12:])
			if tpid == 0x8100 || tpid == 0x88a8 {
				tagged = append(tagged, f)
			}
		}
	}
	if len(tagged) < 100 {
		t.Fatalf("only %d tagged frames", len(tagged))
	}
	for _, expr := range exprs {
		file, err := Compile(expr, linkEthernet, Options{})
		if err != nil {
			t.Fatal(err)
		}
		kern, err := Compile(expr, linkEthernet, Options{KernelVLAN: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tagged {
			want, _, err := run(file, f.data, meta{})
			if err != nil {
				t.Fatal(err)
			}
			// What AF_PACKET hands over: the frame without its outer tag,
			// the tag in metadata.
			stripped := append(append([]byte(nil), f.data[:12]...), f.data[16:]...)
			m := meta{vlanPresent: true, vlanTCI: binary.BigEndian.Uint16(f.data[14:])}
			got, _, err := run(kern, stripped, m)
			if err != nil {
				t.Fatal(err)
			}
			if (got != 0) != (want != 0) {
				t.Errorf("%q on %s: KernelVLAN %v, in-frame %v\n%s", expr, f.name, got != 0, want != 0, disasm(kern))
				break
			}
		}
		// An untagged frame has no metadata tag: the first vlan is false.
		if expr == "vlan" {
			got, _, _ := run(kern, ether(macB, macA, nil, 0x0800, make([]byte, 40)), meta{})
			if got != 0 {
				t.Errorf("vlan matched an untagged frame")
			}
		}
	}
}
