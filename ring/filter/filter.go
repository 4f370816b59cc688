package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// Options says where the program will run.
type Options struct {
	// KernelVLAN: frames come from a Linux AF_PACKET socket, where the
	// kernel has already removed the outer 802.1Q/802.1ad tag into packet
	// metadata. The first "vlan [ID]" then tests the tag with the
	// ancillary loads (bpf.ExtVLANTagPresent, bpf.ExtVLANTag) and does not
	// shift offsets for it, as libpcap does on a live Linux handle. Such a
	// program is for the kernel: New refuses it, as replay has no metadata.
	KernelVLAN bool
	// Snaplen is the accept length returned for a match (0 means 262144).
	Snaplen uint32
}

// defaultSnaplen is the accept length when Options.Snaplen is 0, tcpdump's
// default.
const defaultSnaplen = 262144

// Compile compiles a pcap-filter(7) expression into a classic BPF program
// for frames of link type link (a pcap LINKTYPE_* number: 0 BSD loopback,
// 1 Ethernet, 101, 228 and 229 raw IP, 108 OpenBSD loopback, 113 Linux
// SLL, 276 Linux SLL2). The program accepts exactly the frames libpcap's
// program for the same expression and link type accepts. An empty or
// all-space expression returns (nil, nil): no filter. An error is one
// line naming the word and its column.
func Compile(expr string, link uint16, opts Options) (prog []bpf.RawInstruction, err error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	g, err := newGen(link, opts)
	if err != nil {
		return nil, err
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if t.kind == kUnsupported {
			return nil, fmt.Errorf("filter: %q at column %d is not supported by tcpsentry's filter compiler (%s)", t.text, t.col(), supportedList)
		}
	}
	tree, err := parse(toks)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			ce, ok := r.(compileError)
			if !ok {
				panic(r)
			}
			prog, err = nil, ce.err
		}
	}()
	root, _ := g.walk(tree, qerr)
	snaplen := opts.Snaplen
	if snaplen == 0 {
		snaplen = defaultSnaplen
	}
	return emit(root, snaplen)
}
