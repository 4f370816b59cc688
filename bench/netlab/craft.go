package netlab

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// CraftedV4 is the address of the lab's crafted clients: in the lab's
// subnet, owned by no namespace. A crafted client writes its frames onto
// the client namespace's eth0 (source MAC ClientMAC) and reads the
// server's answers off it with a packet socket; the client kernel drops
// those answers silently (not a local address, no forwarding), so it
// never resets a crafted connection. Lab.Craft adds the neighbour entry
// the server needs to answer it.
var CraftedV4 = netip.MustParseAddr("10.213.0.3")

// craftSpec is the helper's spec of mode "craft".
type craftSpec struct {
	Script string
}

// craftScripts are the programs a crafted client can run, by name. Each
// returns a log of what it sent and saw, one line per step.
var craftScripts = map[string]func(n *rawNet) error{
	"seed000": craftSeed000,
	"seed001": craftSeed001,
}

// Craft runs the crafted-client program script (see craftScripts) in a
// helper in the client namespace, from CraftedV4, and returns its log.
// It may be called from any goroutine.
func (l *Lab) Craft(script string) (string, error) {
	if _, ok := craftScripts[script]; !ok {
		return "", fmt.Errorf("netlab: no crafted-client script %q", script)
	}
	if out, err := run("ip", "-n", l.ServerNS, "neigh", "replace", CraftedV4.String(),
		"lladdr", ClientMAC, "dev", Iface, "nud", "permanent"); err != nil {
		return "", fmt.Errorf("netlab: neighbour %s in %s: %v: %s", CraftedV4, l.ServerNS, err, out)
	}
	spec, err := json.Marshal(craftSpec{Script: script})
	if err != nil {
		return "", err
	}
	cmd, err := l.helper(Client, "craft", spec)
	if err != nil {
		return "", err
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p, err := l.start(cmd)
	if err != nil {
		return "", fmt.Errorf("netlab: craft: %w", err)
	}
	if err := p.Wait(time.Minute); err != nil {
		return stdout.String(), fmt.Errorf("netlab: craft %s: %v: %s", script, err, p.Stderr())
	}
	return stdout.String(), nil
}

// craft is the helper of mode "craft".
func craft(cs craftSpec) error {
	n, err := openRaw(Iface)
	if err != nil {
		return err
	}
	defer n.close()
	return craftScripts[cs.Script](n)
}

// rawNet sends and receives Ethernet frames on the client namespace's
// eth0 for crafted connections from CraftedV4 to ServerV4.
type rawNet struct {
	rx     *pcapgo.EthernetHandle
	tx     int // AF_PACKET socket for sending
	ifi    int
	src    net.HardwareAddr
	dst    net.HardwareAddr
	start  time.Time
	mu     sync.Mutex
	conns  map[uint16]chan Segment // by local port
	ipID   uint16
	closed chan struct{}
}

func openRaw(iface string) (*rawNet, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	rx, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		return nil, err
	}
	// Protocol 0: this socket only sends.
	tx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		rx.Close()
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	src, _ := net.ParseMAC(ClientMAC)
	dst, _ := net.ParseMAC(ServerMAC)
	n := &rawNet{rx: rx, tx: tx, ifi: ifi.Index, src: src, dst: dst, start: time.Now(),
		conns: map[uint16]chan Segment{}, ipID: 1, closed: make(chan struct{})}
	go n.receive()
	return n, nil
}

func (n *rawNet) close() {
	close(n.closed)
	n.rx.Close()
	unix.Close(n.tx)
}

// logf writes one line of the script's log (stdout), stamped with the
// time since the script started.
func (n *rawNet) logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "%7.3f "+format+"\n", append([]any{time.Since(n.start).Seconds()}, args...)...)
}

// receive hands the server's segments to CraftedV4 to their connection.
func (n *rawNet) receive() {
	for {
		data, ci, err := n.rx.ReadPacketData()
		if err != nil {
			return
		}
		if len(data) < 14 || !bytes.Equal(data[6:12], n.dst) {
			continue // not from the server (e.g. our own frames)
		}
		s, ok := segmentOf(data, layers.LinkTypeEthernet, ci)
		if !ok || s.Dst.Addr() != CraftedV4 {
			continue
		}
		n.mu.Lock()
		ch := n.conns[s.Dst.Port()]
		n.mu.Unlock()
		if ch != nil {
			select {
			case ch <- s:
			default:
			}
		}
	}
}

// clock is a crafted host's TCP timestamp clock: TSval = Base + the
// milliseconds since the script started (1000 ticks/s).
type clock struct {
	n    *rawNet
	Base uint32
}

func (c clock) now() uint32 { return c.Base + uint32(time.Since(c.n.start)/time.Millisecond) }

// rawConn is one crafted TCP connection from CraftedV4:port.
type rawConn struct {
	n              *rawNet
	local, remote  netip.AddrPort
	clk            clock
	in             chan Segment
	iss, irs       uint32
	sndNxt, rcvNxt uint32
	tsRecent       uint32
	established    bool

	// What was seen from the server.
	SYNACKs, RSTs, BareACKs int
	Received                int
	FINed                   bool // the server's FIN was received
	sndUna                  uint32
	lastBareACK             Segment
}

// dial prepares a connection from CraftedV4:port to remote with clock clk
// and initial sequence number iss; nothing is sent yet.
func (n *rawNet) dial(port uint16, remote netip.AddrPort, clk clock, iss uint32) *rawConn {
	c := &rawConn{n: n, local: netip.AddrPortFrom(CraftedV4, port), remote: remote, clk: clk,
		in: make(chan Segment, 256), iss: iss, sndNxt: iss, sndUna: iss}
	n.mu.Lock()
	n.conns[port] = c.in
	n.mu.Unlock()
	return c
}

// TCP flags of send.
const (
	fFIN = 1 << iota
	fSYN
	fRST
	fPSH
	fACK
)

// send writes one segment. SYNs carry a Linux client's options (MSS,
// SACK permitted, timestamps, window scale); other segments carry the
// timestamps option unless noTS; RSTs carry none.
func (c *rawConn) send(flags int, seq, ack uint32, payload []byte, noTS bool) error {
	n := c.n
	n.mu.Lock()
	id := n.ipID
	n.ipID++
	n.mu.Unlock()
	eth := &layers.Ethernet{SrcMAC: n.src, DstMAC: n.dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: id, Flags: layers.IPv4DontFragment,
		Protocol: layers.IPProtocolTCP, SrcIP: c.local.Addr().AsSlice(), DstIP: c.remote.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(c.local.Port()), DstPort: layers.TCPPort(c.remote.Port()),
		Seq: seq, Ack: ack, FIN: flags&fFIN != 0, SYN: flags&fSYN != 0, RST: flags&fRST != 0,
		PSH: flags&fPSH != 0, ACK: flags&fACK != 0, Window: 502}
	ts := make([]byte, 8)
	binary.BigEndian.PutUint32(ts, c.clk.now())
	switch {
	case tcp.SYN:
		tcp.Window = 64240
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted},
			{OptionType: layers.TCPOptionKindTimestamps, OptionData: ts},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{7}},
		}
	case tcp.RST:
		tcp.Window = 0
	case !noTS:
		binary.BigEndian.PutUint32(ts[4:], c.tsRecent)
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionData: ts},
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		return err
	}
	sa := &unix.SockaddrLinklayer{Ifindex: n.ifi, Halen: 6, Protocol: htons(unix.ETH_P_IP)}
	copy(sa.Addr[:], n.dst)
	if err := unix.Sendto(n.tx, buf.Bytes(), 0, sa); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// errTimeout is returned by wait when its deadline passes.
var errTimeout = errors.New("timed out")

// wait handles the server's segments (acking data and FIN in order) until
// done returns true or d passes (errTimeout). done may be nil: wait then
// handles whatever arrives for d.
func (c *rawConn) wait(d time.Duration, done func() bool) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for done == nil || !done() {
		select {
		case s := <-c.in:
			if err := c.handle(s); err != nil {
				return err
			}
		case <-timer.C:
			if done == nil {
				return nil
			}
			return errTimeout
		}
	}
	return nil
}

// handle processes one segment from the server.
func (c *rawConn) handle(s Segment) error {
	if s.HasTS {
		c.tsRecent = s.TSval
	}
	switch {
	case s.RST:
		c.RSTs++
		c.n.logf("%v < RST seq %d ack %d", c.local, s.Seq, s.Ack)
		return nil
	case s.SYN && s.ACK:
		c.SYNACKs++
		if !c.established {
			c.irs = s.Seq
			c.rcvNxt = s.Seq + 1
			c.sndUna = s.Ack
		}
		c.n.logf("%v < SYN/ACK seq %d ack %d (#%d)", c.local, s.Seq, s.Ack, c.SYNACKs)
		return nil
	}
	if s.Bare() {
		c.BareACKs++
		c.lastBareACK = s
	}
	if !c.established {
		c.n.logf("%v < %v before the handshake", c.local, s)
		return nil
	}
	if s.ACK && int32(s.Ack-c.sndUna) > 0 {
		c.sndUna = s.Ack
	}
	advance := false
	if s.Len > 0 && s.Seq == c.rcvNxt {
		c.rcvNxt += uint32(s.Len)
		c.Received += s.Len
		advance = true
	}
	if s.FIN && s.Seq+uint32(s.Len) == c.rcvNxt && !c.FINed {
		c.rcvNxt++
		c.FINed = true
		advance = true
	}
	if advance || (s.Len > 0 && s.Seq != c.rcvNxt) {
		return c.send(fACK, c.sndNxt, c.rcvNxt, nil, false)
	}
	return nil
}

// synSent sends (or re-sends) the SYN.
func (c *rawConn) synSent() error {
	c.n.logf("%v > SYN seq %d TSval %d", c.local, c.iss, c.clk.now())
	return c.send(fSYN, c.iss, 0, nil, false)
}

// connect sends the SYN (re-sent every second, tries times in all) and,
// once the SYN/ACK arrives, the handshake-completing ACK.
func (c *rawConn) connect(tries int) error {
	for i := 0; i < tries; i++ {
		if err := c.synSent(); err != nil {
			return err
		}
		err := c.wait(time.Second, func() bool { return c.SYNACKs > 0 })
		if err == nil {
			c.sndNxt = c.iss + 1
			c.established = true
			return c.send(fACK, c.sndNxt, c.rcvNxt, nil, false)
		}
		if !errors.Is(err, errTimeout) {
			return err
		}
	}
	return fmt.Errorf("%v: no SYN/ACK after %d SYNs", c.local, tries)
}

// write sends payload in one segment.
func (c *rawConn) write(payload []byte) error {
	seq := c.sndNxt
	c.sndNxt += uint32(len(payload))
	return c.send(fPSH|fACK, seq, c.rcvNxt, payload, false)
}

// exchange sends one lab request asking for resp bytes (the server then
// closes when mode says so) and waits for the whole answer.
func (c *rawConn) exchange(size, resp int, mode Close) error {
	before := c.Received
	if err := c.write(request(size, resp, string(mode))); err != nil {
		return err
	}
	if err := c.wait(3*time.Second, func() bool { return c.Received-before >= resp && c.sndUna == c.sndNxt }); err != nil {
		return fmt.Errorf("%v: answer: %w (received %d)", c.local, err, c.Received-before)
	}
	return nil
}

// close ends the connection with a FIN (first, or after the server's)
// and waits for the server's FIN and the ACK of ours.
func (c *rawConn) close() error {
	seq := c.sndNxt
	c.sndNxt++
	if err := c.send(fFIN|fACK, seq, c.rcvNxt, nil, false); err != nil {
		return err
	}
	if err := c.wait(3*time.Second, func() bool { return c.FINed && c.sndUna == c.sndNxt }); err != nil {
		return fmt.Errorf("%v: close: %w", c.local, err)
	}
	c.n.logf("%v closed", c.local)
	return nil
}

// forget stops delivering segments to c.
func (c *rawConn) forget() {
	c.n.mu.Lock()
	if c.n.conns[c.local.Port()] == c.in {
		delete(c.n.conns, c.local.Port())
	}
	c.n.mu.Unlock()
}

// complete makes one whole connection: handshake, one exchange of a
// request of size bytes for resp bytes, the close (by the server first
// when mode is CloseServer).
func (c *rawConn) complete(size, resp int, mode Close) error {
	if err := c.connect(1); err != nil {
		return err
	}
	if err := c.exchange(size, resp, mode); err != nil {
		return err
	}
	if mode == CloseServer {
		if err := c.wait(3*time.Second, func() bool { return c.FINed }); err != nil {
			return fmt.Errorf("%v: server FIN: %w", c.local, err)
		}
	}
	return c.close()
}

// describe is a one-line account of c for the log.
func (c *rawConn) describe() string {
	return fmt.Sprintf("%v -> %v: iss %d irs %d, %d SYN/ACK, %d RST, %d bare ACK, %d bytes in", c.local, c.remote,
		c.iss, c.irs, c.SYNACKs, c.RSTs, c.BareACKs, c.Received)
}
