package filter

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"
)

// libpcap's programs come from tcpdump -ddd reading an empty pcap file of
// the link type: libpcap compiles for a capture file, with its optimizer,
// as tcpdump -r would filter it.

var allLinks = []uint16{linkNull, linkEthernet, linkRaw, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2}

// requireTcpdump skips the test when tcpdump is missing, unless CI=true,
// where a missing tcpdump is a broken machine.
func requireTcpdump(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("tcpdump not found and CI=true: the differential tests against libpcap need it (apt-get install tcpdump): %v", err)
		}
		tb.Skipf("tcpdump not installed (apt-get install tcpdump): the differential tests against libpcap need it")
	}
}

var (
	emptyOnce sync.Once
	emptyDir  string
	emptyErr  error

	libpcapMu    sync.Mutex
	libpcapCache = map[string]libpcapResult{}
)

type libpcapResult struct {
	prog []bpf.RawInstruction
	err  string // tcpdump's complaint, "" when it compiled
}

// emptyPcap is the path of an empty capture file of link type link.
func emptyPcap(tb testing.TB, link uint16) string {
	tb.Helper()
	emptyOnce.Do(func() {
		emptyDir, emptyErr = os.MkdirTemp("", "filter-empty-pcap")
		if emptyErr != nil {
			return
		}
		for _, l := range allLinks {
			var buf bytes.Buffer
			w := pcapgo.NewWriter(&buf)
			if emptyErr = w.WriteFileHeader(262144, layers.LinkType(l)); emptyErr != nil {
				return
			}
			if emptyErr = os.WriteFile(filepath.Join(emptyDir, fmt.Sprintf("empty%d.pcap", l)), buf.Bytes(), 0o644); emptyErr != nil {
				return
			}
		}
	})
	if emptyErr != nil {
		tb.Fatal(emptyErr)
	}
	return filepath.Join(emptyDir, fmt.Sprintf("empty%d.pcap", link))
}

func TestMain(m *testing.M) {
	code := m.Run()
	if emptyDir != "" {
		os.RemoveAll(emptyDir)
	}
	os.Exit(code)
}

// libpcap compiles expr for link with tcpdump -ddd.
func libpcap(tb testing.TB, expr string, link uint16) libpcapResult {
	tb.Helper()
	key := fmt.Sprint(link, "\x00", expr)
	libpcapMu.Lock()
	r, ok := libpcapCache[key]
	libpcapMu.Unlock()
	if ok {
		return r
	}
	cmd := exec.Command("tcpdump", "-ddd", "-r", emptyPcap(tb, link), "--", expr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			tb.Fatalf("tcpdump: %v", err)
		}
		msg := ""
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, "tcpdump: ") {
				msg = strings.TrimPrefix(l, "tcpdump: ")
			}
		}
		if msg == "" {
			tb.Fatalf("tcpdump failed on %q (link %d) without saying why: %s", expr, link, stderr.String())
		}
		r = libpcapResult{err: msg}
	} else {
		prog, err := parseDDD(stdout.String())
		if err != nil {
			tb.Fatalf("tcpdump -ddd %q (link %d): %v\n%s", expr, link, err, stdout.String())
		}
		r = libpcapResult{prog: prog}
	}
	libpcapMu.Lock()
	libpcapCache[key] = r
	libpcapMu.Unlock()
	return r
}

// parseDDD reads tcpdump -ddd: the instruction count, then "code jt jf k"
// per line, all decimal.
func parseDDD(s string) ([]bpf.RawInstruction, error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	if !sc.Scan() {
		return nil, fmt.Errorf("no output")
	}
	n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil {
		return nil, fmt.Errorf("count line: %v", err)
	}
	var prog []bpf.RawInstruction
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			return nil, fmt.Errorf("line %q: want 4 fields", sc.Text())
		}
		var v [4]uint64
		for i := range f {
			if v[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("line %q: %v", sc.Text(), err)
			}
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) != n {
		return nil, fmt.Errorf("count says %d instructions, read %d", n, len(prog))
	}
	return prog, nil
}

// meta is what a filter reads beside the frame's bytes: its length on
// the wire, and the VLAN tag the kernel took off it (Linux socket
// metadata).
type meta struct {
	wirelen     int // below len(pkt) (0): len(pkt)
	vlanPresent bool
	vlanTCI     uint16
}

// run interprets prog over pkt as the kernel and libpcap's bpf_filter do
// (a load past the end rejects; division by zero rejects), counting the
// instructions executed. Unlike x/net/bpf's VM it also knows neg and the
// VLAN ancillary loads, so it runs libpcap's programs and KernelVLAN ones.
// len is m.wirelen, or len(pkt) when that is more, as in Match.
func run(prog []bpf.RawInstruction, pkt []byte, m meta) (ret uint32, steps int, err error) {
	var a, x uint32
	var mem [16]uint32
	loadAt := func(off uint64, size uint64) (uint32, bool) {
		if off+size > uint64(len(pkt)) {
			return 0, false
		}
		var v uint32
		for i := uint64(0); i < size; i++ {
			v = v<<8 | uint32(pkt[off+i])
		}
		return v, true
	}
	const adOff = 0xfffff000
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		k := in.K
		size := [4]uint64{4, 2, 1, 0}[in.Op&0x18>>3]
		switch cls := in.Op & 0x07; cls {
		case 0x00, 0x01: // ld, ldx
			var v uint32
			switch mode := in.Op & 0xe0; mode {
			case 0x00: // imm
				v = k
			case 0x20: // abs
				if k >= adOff {
					switch k - adOff {
					case 44:
						v = uint32(m.vlanTCI)
					case 48:
						if m.vlanPresent {
							v = 1
						}
					default:
						// bpf_filter has no ancillary data: past the end.
						return 0, steps, nil
					}
					break
				}
				var ok bool
				if v, ok = loadAt(uint64(k), size); !ok {
					return 0, steps, nil
				}
			case 0x40: // ind
				var ok bool
				if v, ok = loadAt(uint64(x)+uint64(k), size); !ok {
					return 0, steps, nil
				}
			case 0x60: // mem
				if k > 15 {
					return 0, steps, fmt.Errorf("pc %d: scratch %d", pc, k)
				}
				v = mem[k]
			case 0x80: // len
				v = uint32(max(m.wirelen, len(pkt)))
			case 0xa0: // msh
				b, ok := loadAt(uint64(k), 1)
				if !ok {
					return 0, steps, nil
				}
				v = (b & 0xf) * 4
			default:
				return 0, steps, fmt.Errorf("pc %d: load mode %#x", pc, mode)
			}
			if cls == 0x00 {
				a = v
			} else {
				x = v
			}
		case 0x02, 0x03: // st, stx
			if k > 15 {
				return 0, steps, fmt.Errorf("pc %d: scratch %d", pc, k)
			}
			if cls == 0x02 {
				mem[k] = a
			} else {
				mem[k] = x
			}
		case 0x04: // alu
			operand := k
			if in.Op&0x08 != 0 {
				operand = x
			}
			switch in.Op & 0xf0 {
			case 0x00:
				a += operand
			case 0x10:
				a -= operand
			case 0x20:
				a *= operand
			case 0x30:
				if operand == 0 {
					return 0, steps, nil
				}
				a /= operand
			case 0x40:
				a |= operand
			case 0x50:
				a &= operand
			case 0x60:
				a <<= operand
			case 0x70:
				a >>= operand
			case 0x80:
				a = -a
			case 0x90:
				if operand == 0 {
					return 0, steps, nil
				}
				a %= operand
			case 0xa0:
				a ^= operand
			default:
				return 0, steps, fmt.Errorf("pc %d: alu op %#x", pc, in.Op)
			}
		case 0x05: // jmp
			operand := k
			if in.Op&0x08 != 0 {
				operand = x
			}
			var taken bool
			switch in.Op & 0xf0 {
			case 0x00:
				pc += int(k)
				continue
			case 0x10:
				taken = a == operand
			case 0x20:
				taken = a > operand
			case 0x30:
				taken = a >= operand
			case 0x40:
				taken = a&operand != 0
			default:
				return 0, steps, fmt.Errorf("pc %d: jump op %#x", pc, in.Op)
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case 0x06: // ret
			if in.Op&0x18 == 0x10 {
				return a, steps, nil
			}
			return k, steps, nil
		case 0x07: // misc
			if in.Op&0xf8 == 0x00 {
				x = a
			} else {
				a = x
			}
		}
	}
	return 0, steps, fmt.Errorf("ran off the end of the program")
}
