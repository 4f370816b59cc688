//go:build linux

package ring

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/tcpsentry/tcpsentry/ring/filter"
)

// Offsets in a TPACKET_V3 block and frame (linux/if_packet.h).
const (
	blockStatusOff = 8  // tpacket_block_desc.hdr.bh1.block_status
	blockNumOff    = 12 // num_pkts
	blockFirstOff  = 16 // offset_to_first_pkt
	frameHdrLen    = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllPkttypeOff  = frameHdrLen + 10
	sllLen         = 20 // sizeof(struct sockaddr_ll)
	vlanTagLen     = 4
	packetOutgoing = 4 // PACKET_OUTGOING
	ethPAll        = 0x0003
	arphrdEther    = 1
	arphrdLoopback = 772
	arphrdNone     = 0xfffe
	arphrdIPGRE    = 778
	arphrdTunnel   = 768
	arphrdTunnel6  = 769
	arphrdRawIP    = 519
	maxInterfaces  = 64 // an interface index travels in a byte of the flow key
	maxDrain       = 2 * time.Second
)

// Live is a running live capture. Its sources feed the workers; Stats
// reads the kernel's counters. Stop makes every source return ErrClosed;
// Close releases the rings and may only be called once no worker touches
// a frame any more.
type Live struct {
	cfg     LiveConfig
	ifaces  []Interface
	socks   [][]*sock // [interface][worker]
	srcs    []*liveSource
	efd     int
	stopped atomic.Bool
	// drainUntil is when stopped sources stop reading (ns since epoch).
	drainUntil atomic.Int64

	mu     sync.Mutex
	kstats []IfaceStats // kernel counters accumulated (reading resets them)
	closed bool
}

// sock is one AF_PACKET socket and its mapped ring.
type sock struct {
	fd        int
	mem       []byte
	blockSize int
	blocks    int
	next      int // the block the worker reads next
	link      LinkType
	iface     int
	vlan      bool // Ethernet framing: pass on the outer tag the kernel removed
	outgoing  bool // drop PACKET_OUTGOING frames (loopback sees them twice)

	frames, losing, csum, errs, netDown atomic.Uint64
}

// liveSource is one worker's share: a socket per interface, polled
// together with the stop eventfd.
type liveSource struct {
	l       *Live
	socks   []*sock
	pfds    []unix.PollFd // socks, then the eventfd
	rr      int           // socket to look at first (round robin)
	cur     *sock         // socket of the block being walked, nil if none
	blk     []byte
	off     int // offset of the next frame in blk
	left    int // frames of blk not yet handed out
	timeout int // poll timeout in ms
	lag     int64
}

// OpenLive opens the capture: for every interface, Workers sockets with a
// TPACKET_V3 ring each, the filter attached before bind, joined in one
// fanout group. The errors are one line each and say what to do.
func OpenLive(cfg LiveConfig) (*Live, error) {
	cfg.defaults()
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	l := &Live{cfg: cfg, efd: -1}
	var err error
	if cfg.Netns != "" {
		err = inNetns(cfg.Netns, l.open)
	} else {
		err = l.open()
	}
	if err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

func checkConfig(c *LiveConfig) error {
	if len(c.Interfaces) == 0 {
		return errors.New("no interface to capture on (use -i)")
	}
	if len(c.Interfaces) > maxInterfaces {
		return fmt.Errorf("%d interfaces: at most %d", len(c.Interfaces), maxInterfaces)
	}
	seen := map[string]bool{}
	for _, n := range c.Interfaces {
		if n == "any" {
			return errors.New(`interface "any" is not supported: name each interface (-i eth0 -i lo), so that every socket has one link type and its own fanout group`)
		}
		if seen[n] {
			return fmt.Errorf("interface %q given twice", n)
		}
		seen[n] = true
	}
	page := os.Getpagesize()
	if c.BlockSize < page || bits.OnesCount(uint(c.BlockSize)) != 1 || c.BlockSize > 1<<30 {
		return fmt.Errorf("ring block size %d: must be a power of two between the page size (%d) and 1 GiB", c.BlockSize, page)
	}
	if c.FrameSize < 128 || c.FrameSize%16 != 0 || c.FrameSize > c.BlockSize {
		return fmt.Errorf("ring frame size %d: must be a multiple of 16, at least 128 and at most the block size", c.FrameSize)
	}
	if c.Blocks < 2 || c.Blocks > 1<<20 {
		return fmt.Errorf("ring blocks %d: must be between 2 and %d", c.Blocks, 1<<20)
	}
	if c.Snaplen < MinSnaplen || c.Snaplen > MaxFrameLen {
		return fmt.Errorf("snap length %d: must be between %d and %d", c.Snaplen, MinSnaplen, MaxFrameLen)
	}
	if c.RetireTimeout < time.Millisecond || c.RetireTimeout > time.Minute {
		return fmt.Errorf("ring block timeout %v: must be between 1ms and 1m", c.RetireTimeout)
	}
	total := c.MemoryBytes()
	if avail, ok := memAvailable(); ok && total > avail/2 {
		return fmt.Errorf("ring memory %s (%d interface(s) x %d worker(s) x %d blocks x %s) is more than half of the available memory (%s): lower --ring-blocks or --ring-block-size",
			mib(total), len(c.Interfaces), c.Workers, c.Blocks, mib(int64(c.BlockSize)), mib(avail))
	}
	return nil
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10, err == nil
		}
	}
	return 0, false
}

// inNetns runs f on a thread that joined the network namespace at path;
// sockets keep the namespace they were created in. If the thread cannot
// return to its namespace it stays locked, and Go ends it with the
// goroutine.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", path, err)
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", path, err)
			return
		}
		err = f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func (l *Live) open() error {
	cfg := &l.cfg
	for _, name := range cfg.Interfaces {
		ifc, err := lookupInterface(name)
		if err != nil {
			return err
		}
		l.ifaces = append(l.ifaces, ifc)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	l.efd = efd
	l.kstats = make([]IfaceStats, len(l.ifaces))
	l.socks = make([][]*sock, len(l.ifaces))
	for i := range l.ifaces {
		if err := l.openInterface(i); err != nil {
			return err
		}
	}
	timeout := int(cfg.RetireTimeout / time.Millisecond)
	for w := range cfg.Workers {
		s := &liveSource{l: l, timeout: timeout, lag: int64(2*cfg.RetireTimeout + 20*time.Millisecond)}
		for i := range l.ifaces {
			k := l.socks[i][w]
			s.socks = append(s.socks, k)
			s.pfds = append(s.pfds, unix.PollFd{Fd: int32(k.fd), Events: unix.POLLIN})
		}
		s.pfds = append(s.pfds, unix.PollFd{Fd: int32(efd), Events: unix.POLLIN})
		l.srcs = append(l.srcs, s)
	}
	return nil
}

// lookupInterface finds an interface and its link type in the calling
// thread's namespace.
func lookupInterface(name string) (Interface, error) {
	ni, err := net.InterfaceByName(name)
	if err != nil {
		var have []string
		if all, err := net.Interfaces(); err == nil {
			for _, i := range all {
				have = append(have, i.Name)
			}
		}
		return Interface{}, fmt.Errorf("no interface %q (interfaces here: %s)", name, strings.Join(have, ", "))
	}
	ifc := Interface{Name: name, Index: ni.Index, Loopback: ni.Flags&net.FlagLoopback != 0}
	hw, err := arphrd(name)
	if err != nil {
		return Interface{}, fmt.Errorf("%s: reading its link type: %w", name, err)
	}
	switch hw {
	case arphrdEther, arphrdLoopback:
		ifc.Link = LinkTypeEthernet
	case arphrdNone, arphrdRawIP, arphrdTunnel, arphrdTunnel6, arphrdIPGRE:
		ifc.Link = LinkTypeRaw
	default:
		return Interface{}, fmt.Errorf("%s: link type ARPHRD %d is not supported (Ethernet, loopback and raw-IP tunnels are)", name, hw)
	}
	if ni.Flags&net.FlagUp == 0 {
		return Interface{}, fmt.Errorf("%s is down (ip link set %s up)", name, name)
	}
	if !ifc.Loopback {
		ifc.Offloads = offloads(name)
	}
	return ifc, nil
}

func arphrd(name string) (uint16, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, err
	}
	return ifr.Uint16(), nil // ifr_hwaddr.sa_family
}

// ethtool commands (linux/ethtool.h) for the offloads that coalesce
// segments: a capture then sees one giant frame where the wire had many.
const (
	ethtoolGTSO   = 0x1e
	ethtoolGFlags = 0x25
	ethtoolGGRO   = 0x2b
	ethFlagLRO    = 1 << 15
)

type ethtoolValue struct{ cmd, data uint32 }

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// offloads lists which of gro, lro, tso are on; nil if none or if the
// driver does not say. GSO is not among them: it segments before the
// capture tap sees the frames.
func offloads(name string) []string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	get := func(cmd uint32) (uint32, bool) {
		v := ethtoolValue{cmd: cmd}
		var ifr ifreqData
		copy(ifr.name[:], name)
		ifr.data = unsafe.Pointer(&v)
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(&v)
		return v.data, e == 0
	}
	var on []string
	if v, ok := get(ethtoolGGRO); ok && v != 0 {
		on = append(on, "gro")
	}
	if v, ok := get(ethtoolGFlags); ok && v&ethFlagLRO != 0 {
		on = append(on, "lro")
	}
	if v, ok := get(ethtoolGTSO); ok && v != 0 {
		on = append(on, "tso")
	}
	return on
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openInterface opens interface i's sockets, one per worker, in the order
// that never captures unfiltered traffic: socket with no protocol (it
// receives nothing), ring, filter, then bind, then fanout.
func (l *Live) openInterface(i int) error {
	cfg := &l.cfg
	ifc := &l.ifaces[i]
	// The kernel has taken the outer VLAN tag out of the frame, so a
	// "vlan" test reads it from the packet's metadata, as libpcap does on
	// a live Linux handle.
	// The program's accept length is the snap length, as in libpcap.
	prog, err := filter.Compile(cfg.Filter, uint16(ifc.Link), filter.Options{KernelVLAN: true, Snaplen: uint32(cfg.Snaplen)})
	if err != nil {
		return fmt.Errorf("%s: %w", ifc.Name, err)
	}
	ifc.FilterLen = len(prog)
	if prog == nil && cfg.Snaplen < MaxFrameLen {
		ret, _ := bpf.RetConstant{Val: uint32(cfg.Snaplen)}.Assemble()
		prog = []bpf.RawInstruction{ret}
	}
	group := -1
	noFanoutOutgoing := false
	for w := range cfg.Workers {
		k, err := l.openSocket(ifc, i, prog)
		if err != nil {
			return err
		}
		l.socks[i] = append(l.socks[i], k)
		if cfg.Workers == 1 {
			continue
		}
		// Hash fanout is symmetric, so both directions of a connection
		// reach the same socket; DEFRAG reassembles IPv4 fragments
		// first so that they hash like their first fragment. The value
		// is a 4-byte int: an 8-byte one is EINVAL on older kernels.
		mode := unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_DEFRAG
		if ifc.Loopback && !noFanoutOutgoing {
			// In a group the group's hook receives, so the socket's
			// PACKET_IGNORE_OUTGOING no longer applies.
			mode |= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
		}
		if w == 0 {
			// The kernel picks an id no other group in the namespace
			// uses, so that two sensors never share a group.
			err = unix.SetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16)
			if err == nil {
				var v int
				v, err = unix.GetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
				group = v & 0xffff
			}
			if errors.Is(err, unix.EINVAL) && mode&unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0 {
				// Before 4.20: outgoing frames are dropped one by one.
				noFanoutOutgoing = true
				mode &^= unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
				err = unix.SetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|unix.PACKET_FANOUT_FLAG_UNIQUEID)<<16)
				if err == nil {
					var v int
					v, err = unix.GetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
					group = v & 0xffff
				}
			}
			if err != nil {
				// Kernels before 4.4 lack UNIQUEID: derive an id from the
				// process and the interface.
				group = (os.Getpid()*131 + ifc.Index) & 0xffff
				err = unix.SetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, mode<<16|group)
			}
		} else {
			err = unix.SetsockoptInt(k.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, mode<<16|group)
		}
		if err != nil {
			return fmt.Errorf("%s: joining fanout group %d: %w", ifc.Name, group, err)
		}
	}
	return nil
}

func (l *Live) openSocket(ifc *Interface, i int, prog []bpf.RawInstruction) (*sock, error) {
	cfg := &l.cfg
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			exe, _ := os.Executable()
			if exe == "" {
				exe = "tcpsentry"
			}
			return nil, fmt.Errorf("capturing needs the CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode): run as root, or grant them with 'setcap cap_net_raw,cap_net_admin+ep %s'", exe)
		}
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	k := &sock{fd: fd, blockSize: cfg.BlockSize, blocks: cfg.Blocks, link: ifc.Link, iface: i,
		vlan: ifc.Link == LinkTypeEthernet && !ifc.Loopback, outgoing: ifc.Loopback}
	fail := func(what string, err error) (*sock, error) {
		k.close()
		return nil, fmt.Errorf("%s: %s: %w", ifc.Name, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3 (needs Linux 3.2)", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(cfg.BlockSize),
		Block_nr:       uint32(cfg.Blocks),
		Frame_size:     uint32(cfg.FrameSize),
		Frame_nr:       uint32(cfg.BlockSize / cfg.FrameSize * cfg.Blocks),
		Retire_blk_tov: uint32(cfg.RetireTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		if errors.Is(err, unix.ENOMEM) {
			return fail(fmt.Sprintf("ring of %s is too large for the kernel to allocate: lower --ring-blocks or --ring-block-size", mib(int64(cfg.BlockSize)*int64(cfg.Blocks))), err)
		}
		return fail("PACKET_RX_RING", err)
	}
	mem, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Sprintf("mapping the ring of %s", mib(int64(cfg.BlockSize)*int64(cfg.Blocks))), err)
	}
	k.mem = mem
	if len(prog) > 0 {
		code := make([]unix.SockFilter, len(prog))
		for j, ins := range prog {
			code[j] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		fp := unix.SockFprog{Len: uint16(len(code)), Filter: &code[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
			return fail("attaching the filter", err)
		}
	}
	if ifc.Loopback {
		// Loopback shows every packet twice, leaving and arriving; keep
		// the arrival, as libpcap does. Frames are also checked one by
		// one in case the kernel lacks the option (before 4.20).
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifc.Index}); err != nil {
		return fail("bind", err)
	}
	if !cfg.NoPromisc && !ifc.Loopback {
		mr := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return fail("promiscuous mode", err)
		}
	}
	return k, nil
}

func (k *sock) close() {
	if k.mem != nil {
		_ = unix.Munmap(k.mem)
		k.mem = nil
	}
	if k.fd >= 0 {
		unix.Close(k.fd)
		k.fd = -1
	}
}

// Interfaces describes the capture interfaces, in the order given.
func (l *Live) Interfaces() []Interface { return l.ifaces }

// Sources returns one source per worker.
func (l *Live) Sources() []Source {
	out := make([]Source, len(l.srcs))
	for i, s := range l.srcs {
		out[i] = s
	}
	return out
}

// Stats returns per-interface counters. It reads (and so resets) the
// kernel's PACKET_STATISTICS of every socket and adds them to the totals
// kept here; call it about once a second so that TP_STATUS_LOSING, which
// the kernel sets until the next read, stays meaningful.
func (l *Live) Stats() []IfaceStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.readKernelStats()
	}
	out := make([]IfaceStats, len(l.kstats))
	copy(out, l.kstats)
	for i, ks := range l.socks {
		for _, k := range ks {
			out[i].Frames += k.frames.Load()
			out[i].Losing += k.losing.Load()
			out[i].CsumNotReady += k.csum.Load()
			out[i].Errors += k.errs.Load()
			out[i].NetDown += k.netDown.Load()
		}
	}
	return out
}

// LinkUp reports whether interface i (in the order of Interfaces) is
// administratively up, as its first socket's network namespace sees it:
// while it is down the kernel delivers nothing to the sockets, and once
// it is up again it does, to the same sockets. known is false when the
// flags could not be read (the interface is gone, or the capture is
// closed).
func (l *Live) LinkUp(i int) (up, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || i < 0 || i >= len(l.socks) || len(l.socks[i]) == 0 || l.socks[i][0].fd < 0 {
		return false, false
	}
	ifr, err := unix.NewIfreq(l.ifaces[i].Name)
	if err != nil {
		return false, false
	}
	// A packet socket passes SIOCGIFFLAGS on to its namespace's devices.
	if err := unix.IoctlIfreq(l.socks[i][0].fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false, false
	}
	return ifr.Uint16()&unix.IFF_UP != 0, true
}

func (l *Live) readKernelStats() {
	for i, ks := range l.socks {
		for _, k := range ks {
			if k.fd < 0 {
				continue
			}
			st, err := unix.GetsockoptTpacketStatsV3(k.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
			if err != nil {
				continue
			}
			// The kernel reports tp_packets with the drops included.
			l.kstats[i].Packets += uint64(st.Packets)
			l.kstats[i].Drops += uint64(st.Drops)
			l.kstats[i].Freezes += uint64(st.Freeze_q_cnt)
		}
	}
}

// Stop makes every source's NextBatch return ErrClosed, including one
// blocked in poll, once the frames captured before the call are read: the
// kernel hands over a partly filled block only at its retire timeout, so
// the sources go on reading for a little longer than that (at most
// maxDrain). The rings stay mapped until Close.
func (l *Live) Stop() {
	if l.stopped.Load() {
		return
	}
	l.drainUntil.CompareAndSwap(0, time.Now().Add(min(2*l.cfg.RetireTimeout+20*time.Millisecond, maxDrain)).UnixNano())
	if l.stopped.Swap(true) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(l.efd, one[:])
}

// Close stops the capture and releases the sockets and rings. The caller
// must make sure no worker is inside NextBatch or still holds a frame:
// the frames are views of the rings.
func (l *Live) Close() error {
	l.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.readKernelStats()
	l.closed = true
	l.release()
	return nil
}

func (l *Live) release() {
	for _, ks := range l.socks {
		for _, k := range ks {
			k.close()
		}
	}
	if l.efd >= 0 {
		unix.Close(l.efd)
		l.efd = -1
	}
}

// Close stops the whole capture (every source shares the stop signal, as
// all of them end together).
func (s *liveSource) Close() error {
	s.l.Stop()
	return nil
}

// statusWord is a block's block_status, shared with the kernel.
func statusWord(blk []byte) *uint32 {
	return (*uint32)(unsafe.Pointer(&blk[blockStatusOff]))
}

func (k *sock) block(i int) []byte {
	return k.mem[i*k.blockSize : (i+1)*k.blockSize : (i+1)*k.blockSize]
}

// NextBatch hands out the frames of the next block the kernel retired,
// len(b.Frames) at a time, and gives the block back on the call after its
// last frame. When nothing comes for a block-retire timeout it returns an
// empty batch whose Clock is the wall clock less a margin for frames still
// in an open block, so that an idle worker's timers run.
func (s *liveSource) NextBatch(b *Batch) error {
	b.N, b.Clock = 0, 0
	for {
		if s.cur != nil && s.left == 0 {
			s.release()
		}
		pfds, timeout := s.pfds, s.timeout
		if s.l.stopped.Load() {
			// Drain: read what the kernel still hands over until the
			// deadline; the eventfd, readable now, stays out of the poll.
			left := time.Until(time.Unix(0, s.l.drainUntil.Load()))
			if s.cur == nil && left <= 0 {
				return ErrClosed
			}
			pfds, timeout = pfds[:len(pfds)-1], int(left/time.Millisecond)+1
		}
		if s.cur == nil && !s.take() {
			n, err := unix.Poll(pfds, timeout)
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				return fmt.Errorf("poll: %w", err)
			}
			if n == 0 {
				if s.l.stopped.Load() {
					continue
				}
				b.Clock = time.Now().UnixNano() - s.lag
				return nil
			}
			for i, k := range s.socks {
				if s.pfds[i].Revents&unix.POLLERR != 0 {
					// Reading the error clears it (ENETDOWN when the
					// link went down); capture goes on when it is back.
					e, _ := unix.GetsockoptInt(k.fd, unix.SOL_SOCKET, unix.SO_ERROR)
					k.errs.Add(1)
					if unix.Errno(e) == unix.ENETDOWN {
						k.netDown.Add(1)
					}
				}
			}
			continue
		}
		s.fill(b)
		if b.N > 0 {
			return nil
		}
	}
}

// take makes the first socket (round robin) whose next block is the
// user's the current one.
func (s *liveSource) take() bool {
	n := len(s.socks)
	for i := range n {
		k := s.socks[(s.rr+i)%n]
		blk := k.block(k.next)
		if atomic.LoadUint32(statusWord(blk))&unix.TP_STATUS_USER == 0 {
			continue
		}
		s.cur, s.blk = k, blk
		s.left = int(binary.NativeEndian.Uint32(blk[blockNumOff:]))
		s.off = int(binary.NativeEndian.Uint32(blk[blockFirstOff:]))
		s.rr = (s.rr + i + 1) % n
		return true
	}
	return false
}

// release gives the current block back to the kernel.
func (s *liveSource) release() {
	k := s.cur
	if k == nil {
		return
	}
	atomic.StoreUint32(statusWord(s.blk), unix.TP_STATUS_KERNEL)
	k.next = (k.next + 1) % k.blocks
	s.cur, s.blk, s.left = nil, nil, 0
}

// fill walks frames of the current block into b.
func (s *liveSource) fill(b *Batch) {
	k, blk := s.cur, s.blk
	b.Link, b.Iface = k.link, k.iface
	var frames, losing, csum uint64
	for b.N < len(b.Frames) && s.left > 0 {
		off := s.off
		if off < 0 || off+frameHdrLen+sllLen > len(blk) {
			s.left = 0 // a corrupt block: never read past it
			break
		}
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&blk[off]))
		s.left--
		if h.Next_offset == 0 {
			s.left = 0
		} else {
			s.off += int(h.Next_offset)
		}
		mac, snap, wire := off+int(h.Mac), int(h.Snaplen), int(h.Len)
		if mac+snap > len(blk) || mac < off+frameHdrLen+sllLen {
			continue
		}
		if k.outgoing && blk[off+sllPkttypeOff] == packetOutgoing {
			continue
		}
		st := h.Status
		if st&unix.TP_STATUS_LOSING != 0 {
			losing++
		}
		if st&unix.TP_STATUS_CSUMNOTREADY != 0 {
			csum++
		}
		var tag uint32
		if k.vlan && st&unix.TP_STATUS_VLAN_VALID != 0 {
			// The kernel took the outer tag into the header; it travels
			// beside the frame (Batch.VLAN) rather than back in it.
			tpid := uint32(unix.ETH_P_8021Q)
			if st&unix.TP_STATUS_VLAN_TPID_VALID != 0 && h.Hv1.Vlan_tpid != 0 {
				tpid = uint32(h.Hv1.Vlan_tpid)
			}
			tag = tpid<<16 | uint32(uint16(h.Hv1.Vlan_tci))
			wire += vlanTagLen
		}
		b.Frames[b.N] = blk[mac : mac+snap : mac+snap]
		b.TS[b.N] = int64(h.Sec)*1e9 + int64(h.Nsec)
		b.WireLen[b.N] = wire
		b.VLAN[b.N] = tag
		b.N++
		frames++
	}
	k.frames.Add(frames)
	if losing > 0 {
		k.losing.Add(losing)
	}
	if csum > 0 {
		k.csum.Add(csum)
	}
}

// CPUs returns the CPUs this process may run on (its affinity mask, which
// taskset and cgroups narrow), in ascending order.
func CPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var out []int
	for c := range len(set) * 64 {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// PinThread locks the calling goroutine to its OS thread and that thread
// to cpu. The goroutine keeps the thread until it exits.
func PinThread(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
	}
	return nil
}
