//go:build linux

package ring_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/ring"
)

// inject writes frames onto iface of the namespace with an AF_PACKET
// socket, in order.
func inject(t *testing.T, w *netlab.Wire, iface string, frames []frame) {
	t.Helper()
	err := ring.InNetns(w.Path, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifc.Index}
		for i, f := range frames {
			if i%200 == 199 {
				// veth hands frames to the receiving side through the
				// per-CPU backlog (net.core.netdev_max_backlog, 1000 by
				// default), which drops beyond it: let it drain.
				time.Sleep(2 * time.Millisecond)
			}
			for {
				err = unix.Sendto(fd, f.Data, 0, to)
				if !errors.Is(err, unix.ENOBUFS) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("frame %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// collect reads every source of l in its own goroutine until stop, and
// returns the frames each source got and the clock beats seen.
type collected struct {
	mu     sync.Mutex
	frames [][]frame
	beats  []int
	clock  []int64
	errs   []error
}

func collect(l *ring.Live) (*collected, func()) {
	srcs := l.Sources()
	c := &collected{frames: make([][]frame, len(srcs)), beats: make([]int, len(srcs)), clock: make([]int64, len(srcs)), errs: make([]error, len(srcs))}
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := ring.NewBatch(64)
			for {
				err := s.NextBatch(b)
				if err != nil {
					if !errors.Is(err, ring.ErrClosed) {
						c.mu.Lock()
						c.errs[i] = err
						c.mu.Unlock()
					}
					return
				}
				c.mu.Lock()
				if b.N == 0 {
					c.beats[i]++
					c.clock[i] = b.Clock
				}
				for j := range b.N {
					// The frame as on the wire: a tag beside it goes back in.
					c.frames[i] = append(c.frames[i], frame{b.Link, b.TS[j], b.WireLen[j], b.AppendWire(nil, j)})
				}
				c.mu.Unlock()
			}
		}()
	}
	return c, func() { l.Stop(); wg.Wait(); l.Close() }
}

func (c *collected) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.frames {
		n += len(f)
	}
	return n
}

// waitFor polls until the sources got n frames or 10 s passed.
func (c *collected) waitFor(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.count() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// Anything beyond n would be a duplicate: give it a moment to show.
	time.Sleep(50 * time.Millisecond)
}

func openLive(t *testing.T, cfg ring.LiveConfig) *ring.Live {
	t.Helper()
	if cfg.Blocks == 0 {
		cfg.Blocks, cfg.BlockSize = 8, 1<<16
	}
	if cfg.Snaplen == 0 {
		// These tests compare whole frames; TestLiveSnaplen the default.
		cfg.Snaplen = ring.MaxFrameLen
	}
	l, err := ring.OpenLive(cfg)
	if err != nil {
		t.Fatalf("OpenLive: %v", err)
	}
	return l
}

// TestLiveDeliversEveryFrameOnce writes 1,990 frames of 199 flows on a veth
// and checks that 1 and 2 workers get each of them exactly once, byte for
// byte, with both directions of every flow on one worker, and that the
// kernel counted the same number.
func TestLiveDeliversEveryFrameOnce(t *testing.T) {
	w := netlab.NewWire(t)
	sent := synthFrames(t, ring.LinkTypeEthernet, 199, 10, 0) // odd: round robin would split flows
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Workers: workers, Netns: w.Path})
			if got := l.Interfaces(); len(got) != 1 || got[0].Link != ring.LinkTypeEthernet || got[0].Loopback {
				t.Fatalf("interfaces %+v", got)
			}
			c, stop := collect(l)
			start := time.Now().UnixNano()
			inject(t, w, netlab.WireInject, sent)
			c.waitFor(t, len(sent))
			stop()
			end := time.Now().UnixNano()
			var got []frame
			owner := map[string]int{}
			for i, fs := range c.frames {
				if c.errs[i] != nil {
					t.Fatalf("source %d: %v", i, c.errs[i])
				}
				for _, f := range fs {
					got = append(got, f)
					k, ok := flowKey(f.Data, f.Link)
					if !ok {
						t.Fatalf("frame without a flow key: % x", f.Data)
					}
					if o, seen := owner[k]; seen && o != i {
						t.Fatalf("a flow's frames reached workers %d and %d", o, i)
					}
					owner[k] = i
				}
			}
			if len(got) != len(sent) {
				t.Fatalf("got %d frames, sent %d (kernel: %+v)", len(got), len(sent), l.Stats())
			}
			want := map[string]int{}
			for _, f := range sent {
				want[string(f.Data)]++
			}
			var bytesGot, bytesSent int
			for i, f := range got {
				if want[string(f.Data)] == 0 {
					t.Fatalf("frame %d was not sent (or came twice): % x", i, f.Data[:min(len(f.Data), 64)])
				}
				want[string(f.Data)]--
				if f.Wire != len(f.Data) || f.Link != ring.LinkTypeEthernet {
					t.Fatalf("frame %d: wire %d, len %d, link %d", i, f.Wire, len(f.Data), f.Link)
				}
				if f.TS < start || f.TS > end {
					t.Fatalf("frame %d: timestamp %d outside the capture [%d, %d]", i, f.TS, start, end)
				}
				bytesGot += f.Wire
			}
			for _, f := range sent {
				bytesSent += len(f.Data)
			}
			if bytesGot != bytesSent {
				t.Fatalf("got %d bytes, sent %d", bytesGot, bytesSent)
			}
			st := l.Stats()[0]
			if st.Packets != uint64(len(sent)) || st.Drops != 0 || st.Frames != uint64(len(sent)) || st.Losing != 0 {
				t.Fatalf("stats %+v; want %d packets and frames, no drops", st, len(sent))
			}
			if workers == 2 {
				for i, fs := range c.frames {
					if len(fs) == 0 {
						t.Errorf("worker %d got nothing: no fanout?", i)
					}
				}
			}
		})
	}
}

// vlanFrame tags an Ethernet frame with the given (TPID, TCI) pairs, outer
// first.
func vlanFrame(f []byte, tags ...[2]uint16) []byte {
	out := append([]byte{}, f[:12]...)
	for _, tg := range tags {
		out = binary.BigEndian.AppendUint16(out, tg[0])
		out = binary.BigEndian.AppendUint16(out, tg[1])
	}
	return append(out, f[12:]...)
}

// TestLiveKeepsVLANTags checks that the tag the kernel moves into the
// frame header travels beside the frame, 802.1Q and 802.1ad (QinQ) alike,
// with its priority bits, so that the frame with it put back (AppendWire)
// is the frame that was on the wire — tagged once, not twice or never.
func TestLiveKeepsVLANTags(t *testing.T) {
	w := netlab.NewWire(t)
	base := synthFrames(t, ring.LinkTypeEthernet, 4, 2, 0)
	var sent []frame
	for i, f := range base {
		var d []byte
		switch i % 4 {
		case 0:
			d = vlanFrame(f.Data, [2]uint16{0x8100, 100})
		case 1:
			d = vlanFrame(f.Data, [2]uint16{0x8100, 0xa000 | 4094}) // priority 5
		case 2:
			d = vlanFrame(f.Data, [2]uint16{0x88a8, 200}, [2]uint16{0x8100, 300})
		case 3:
			d = f.Data
		}
		sent = append(sent, frame{ring.LinkTypeEthernet, 0, len(d), d})
	}
	l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Netns: w.Path})
	c, stop := collect(l)
	inject(t, w, netlab.WireInject, sent)
	c.waitFor(t, len(sent))
	stop()
	got := c.frames[0]
	if len(got) != len(sent) {
		t.Fatalf("got %d frames, sent %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i].Data, sent[i].Data) || got[i].Wire != len(sent[i].Data) {
			t.Errorf("frame %d (wire %d):\n got % x\nwant % x", i, got[i].Wire, got[i].Data[:min(24, len(got[i].Data))], sent[i].Data[:24])
		}
	}
}

// TestLiveSnaplen checks that the kernel copies at most the snap length
// of each frame into the ring, with or without a filter, and that the
// length on the wire and the headers survive: frames longer than the snap
// arrive cut to it, shorter ones whole.
func TestLiveSnaplen(t *testing.T) {
	w := netlab.NewWire(t)
	var sent []frame
	for i := range 40 {
		payload := make([]byte, (i%4)*400) // 0, 400, 800, 1200 bytes
		p := tcpPacket(t, net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), uint16(30000+i), 80, true, false, payload)
		d := wrap(t, ring.LinkTypeEthernet, p)
		sent = append(sent, frame{ring.LinkTypeEthernet, 0, len(d), d})
	}
	for _, tc := range []struct {
		name   string
		snap   int
		filter string
		want   int
	}{
		{"default", -1, "", ring.DefaultSnaplen},
		{"default with a filter", -1, "tcp", ring.DefaultSnaplen},
		{"96", 96, "", 96},
		{"96 with a filter", 96, "tcp port 80", 96},
		{"whole", ring.MaxFrameLen, "", ring.MaxFrameLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Netns: w.Path, Snaplen: tc.snap, Filter: tc.filter})
			c, stop := collect(l)
			inject(t, w, netlab.WireInject, sent)
			c.waitFor(t, len(sent))
			stop()
			got := c.frames[0]
			if len(got) != len(sent) {
				t.Fatalf("got %d frames, sent %d", len(got), len(sent))
			}
			for i, f := range got {
				want := sent[i].Data[:min(tc.want, len(sent[i].Data))]
				if !bytes.Equal(f.Data, want) || f.Wire != len(sent[i].Data) {
					t.Errorf("frame %d: got %d bytes of %d on the wire; want %d of %d", i, len(f.Data), f.Wire, len(want), len(sent[i].Data))
				}
			}
		})
	}
}

// TestLiveFilterInKernel checks that the filter runs in the kernel: the
// socket's own counters see only the frames it accepts.
func TestLiveFilterInKernel(t *testing.T) {
	w := netlab.NewWire(t)
	var sent []frame
	want := 0
	for i := range 300 {
		port := uint16(80 + i%3)
		if port == 80 {
			want++
		}
		p := tcpPacket(t, net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), uint16(30000+i), port, true, false, nil)
		d := wrap(t, ring.LinkTypeEthernet, p)
		sent = append(sent, frame{Data: d})
	}
	l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Workers: 2, Netns: w.Path, Filter: "tcp dst port 80"})
	c, stop := collect(l)
	inject(t, w, netlab.WireInject, sent)
	c.waitFor(t, want)
	st := l.Stats()[0]
	stop()
	if got := c.count(); got != want {
		t.Fatalf("got %d frames; want the %d to port 80", got, want)
	}
	if st.Packets != uint64(want) {
		t.Fatalf("the kernel counted %d packets; want %d (the filter did not run in the kernel)", st.Packets, want)
	}
	if n := l.Interfaces()[0].FilterLen; n == 0 {
		t.Fatal("no filter program")
	}
}

// TestLiveLoopbackOnce checks that a loopback capture sees each packet
// once, not leaving and again arriving, and that an idle source beats.
func TestLiveLoopbackOnce(t *testing.T) {
	w := netlab.NewWire(t)
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			l := openLive(t, ring.LiveConfig{Interfaces: []string{"lo"}, Workers: workers, Netns: w.Path, RetireTimeout: 5 * time.Millisecond})
			if ifc := l.Interfaces()[0]; !ifc.Loopback || ifc.Link != ring.LinkTypeEthernet {
				t.Fatalf("lo: %+v", ifc)
			}
			c, stop := collect(l)
			// Three connection attempts to a closed port: SYN and RST each.
			err := ring.InNetns(w.Path, func() error {
				for range 3 {
					conn, err := net.DialTimeout("tcp", "127.0.0.1:7211", time.Second)
					if err == nil {
						conn.Close()
						return errors.New("port 7211 is open")
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			c.waitFor(t, 6)
			time.Sleep(30 * time.Millisecond) // a few beats
			st := l.Stats()[0]
			stop()
			if got := c.count(); got != 6 {
				t.Fatalf("got %d frames on lo; want 6 (3 SYN, 3 RST)", got)
			}
			// The kernel must not even queue the leaving copies.
			if st.Packets != 6 {
				t.Fatalf("the kernel counted %d packets; want 6", st.Packets)
			}
			if st.CsumNotReady != 3 {
				t.Errorf("%d frames with unfinished checksums; want the 3 SYNs (lo's RSTs carry full ones)", st.CsumNotReady)
			}
			for i := range workers {
				if c.beats[i] == 0 || c.clock[i] == 0 || c.clock[i] > time.Now().UnixNano() {
					t.Fatalf("idle source %d: %d beats, last clock %d", i, c.beats[i], c.clock[i])
				}
			}
		})
	}
}

// TestLiveStopUnblocks checks that Stop wakes a source blocked in poll on a
// link with no traffic and a long block timeout.
func TestLiveStopUnblocks(t *testing.T) {
	w := netlab.NewWire(t)
	l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Workers: 2, Netns: w.Path, RetireTimeout: time.Minute})
	c, stop := collect(l)
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sources still blocked 5 s after Stop")
	}
	for i, err := range c.errs {
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
}

// TestLiveStopDrains checks that frames captured before Stop are still
// delivered though their block was not yet full or timed out.
func TestLiveStopDrains(t *testing.T) {
	w := netlab.NewWire(t)
	l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Netns: w.Path, RetireTimeout: 300 * time.Millisecond})
	c, stop := collect(l)
	sent := synthFrames(t, ring.LinkTypeEthernet, 5, 1, 0)
	inject(t, w, netlab.WireInject, sent)
	time.Sleep(20 * time.Millisecond) // through veth's backlog, into the ring
	if n := c.count(); n != 0 {
		t.Logf("%d frames before Stop (the block was retired early)", n)
	}
	stop()
	if got := c.count(); got != len(sent) {
		t.Fatalf("got %d frames after Stop; want the %d sent before it", got, len(sent))
	}
}

// TestLiveErrors checks the one-line errors of bad configurations.
func TestLiveErrors(t *testing.T) {
	w := netlab.NewWire(t)
	for _, tc := range []struct {
		cfg  ring.LiveConfig
		want string
	}{
		{ring.LiveConfig{Interfaces: []string{"nosuch0"}}, `no interface "nosuch0" (interfaces here: lo, `},
		{ring.LiveConfig{Interfaces: []string{"any"}}, `interface "any" is not supported`},
		{ring.LiveConfig{}, "no interface to capture on"},
		{ring.LiveConfig{Interfaces: []string{"cap0", "cap0"}}, `interface "cap0" given twice`},
		{ring.LiveConfig{Interfaces: []string{"cap0"}, BlockSize: 3000}, "ring block size 3000: must be a power of two"},
		{ring.LiveConfig{Interfaces: []string{"cap0"}, Snaplen: 40}, "snap length 40: must be between 58 and 262144"},
		{ring.LiveConfig{Interfaces: []string{"cap0"}, Blocks: 1 << 20, BlockSize: 1 << 30}, "is more than half of the available memory"},
	} {
		tc.cfg.Netns = w.Path
		_, err := ring.OpenLive(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v; want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error of more than one line: %q", err)
		}
	}
	w.Exec("ip", "link", "set", "inj0", "down")
	if _, err := ring.OpenLive(ring.LiveConfig{Interfaces: []string{"inj0"}, Netns: w.Path}); err == nil || err.Error() != "inj0 is down (ip link set inj0 up)" {
		t.Errorf("down interface: %v", err)
	}
}

// TestLiveLinkUp checks that LinkUp reads the link's state in the
// capture's namespace (the interface exists only there), follows ip link
// set down and up, and knows nothing once the capture is closed; and that
// the ENETDOWN the sockets get when the link goes down is counted, once
// per socket, as an error and as NetDown.
func TestLiveLinkUp(t *testing.T) {
	w := netlab.NewWire(t)
	l := openLive(t, ring.LiveConfig{Interfaces: []string{"cap0"}, Workers: 2, Netns: w.Path})
	c, stop := collect(l)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	state := func(want bool) {
		t.Helper()
		if up, known := l.LinkUp(0); !known || up != want {
			t.Fatalf("LinkUp = %v, %v; want %v, true", up, known, want)
		}
	}
	state(true)
	set := func(s string) {
		t.Helper()
		if out, err := exec.Command("ip", "-n", w.NS, "link", "set", "cap0", s).CombinedOutput(); err != nil {
			t.Fatalf("ip link set cap0 %s: %v: %s", s, err, out)
		}
	}
	set("down")
	state(false)
	var st ring.IfaceStats
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st = l.Stats()[0]; st.NetDown == 2 {
			break
		}
	}
	if st.Errors != 2 || st.NetDown != 2 {
		t.Fatalf("after the link went down: %d errors, %d ENETDOWN; want 2 and 2 (one per socket)", st.Errors, st.NetDown)
	}
	set("up")
	state(true)
	stop() // and Close
	stopped = true
	if _, known := l.LinkUp(0); known {
		t.Fatal("LinkUp knows a state after Close")
	}
	for i, err := range c.errs {
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
}
