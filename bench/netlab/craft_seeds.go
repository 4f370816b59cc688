package netlab

import (
	"errors"
	"fmt"
	"time"
)

// craftSeed000 is seeds/000's client behind a middlebox that translates
// sequence numbers: handshake, 1.5 s pause (the server's re-sent SYN/ACK
// goes unanswered), a GET whose ACK number is 856,107,596 off, ignored
// RSTs, 4 retransmissions with exponential backoff, a FIN.
func craftSeed000(n *rawNet) error {
	c := n.dial(seed000Port, v4(PortSeed000), clock{n: n, Base: 0x1e2d3c4b}, 0x5eed0000)
	defer c.forget()
	if err := c.connect(1); err != nil {
		return err
	}
	n.logf("%v handshake done", c.local)
	if err := c.wait(1500*time.Millisecond, nil); err != nil {
		return err
	}
	if c.SYNACKs < 2 {
		return fmt.Errorf("%s: the server did not re-send its SYN/ACK during the pause", c.describe())
	}
	bogus := c.irs + 1 - seed000Shift
	get := httpGet(seed000GET)
	seq := c.sndNxt
	for i, backoff := range []time.Duration{0, 200, 400, 800, 1600} {
		if err := c.wait(backoff*time.Millisecond, nil); err != nil {
			return err
		}
		n.logf("%v > GET #%d seq %d ack %d (the server's ISN+1 is %d)", c.local, i+1, seq, bogus, c.irs+1)
		if err := c.send(fPSH|fACK, seq, bogus, get, false); err != nil {
			return err
		}
	}
	if err := c.wait(time.Second, nil); err != nil {
		return err
	}
	n.logf("%v > FIN seq %d ack %d", c.local, seq+uint32(len(get)), bogus)
	if err := c.send(fFIN|fACK, seq+uint32(len(get)), bogus, nil, false); err != nil {
		return err
	}
	if err := c.wait(300*time.Millisecond, nil); err != nil {
		return err
	}
	n.logf("%s", c.describe())
	if c.RSTs < 6 {
		return fmt.Errorf("%s: want a RST for each GET and the FIN", c.describe())
	}
	return nil
}

// httpGet is an HTTP GET request of exactly size bytes.
func httpGet(size int) []byte {
	head := "GET / HTTP/1.1\r\nHost: 10.213.0.2:8084\r\nUser-Agent: netlab-seed000\r\nX-Pad: "
	tail := "\r\n\r\n"
	b := []byte(head)
	for len(b) < size-len(tail) {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// craftSeed001 is seeds/001 on a modern server: hosts A and B behind one
// address, each with its own TCP timestamp clock (see seed001Scenario).
func craftSeed001(n *rawNet) error {
	to := v4(PortSeed001)
	a := clock{n: n, Base: seed001ClockA}
	b := clock{n: n, Base: seed001ClockB}
	at := func(d time.Duration) { time.Sleep(time.Until(n.start.Add(d))) }
	whole := func(port uint16, clk clock, mode Close) error {
		c := n.dial(port, to, clk, 0x0a000000+uint32(port)<<8)
		defer c.forget()
		if err := c.complete(100, 100, mode); err != nil {
			return fmt.Errorf("%s: %w", c.describe(), err)
		}
		return nil
	}
	// (a) A: three whole connections, 1 s apart.
	for i := 0; i < 3; i++ {
		at(time.Duration(i) * time.Second)
		if err := whole(seed001A1+uint16(i), a, CloseClient); err != nil {
			return err
		}
	}
	// (b) B: one whole connection, TSval far behind A's.
	at(3 * time.Second)
	if err := whole(seed001B, b, CloseClient); err != nil {
		return err
	}
	// (c) B: a SYN the server drops, re-sent 3 times 1 s apart.
	at(3500 * time.Millisecond)
	dropped := n.dial(seed001Dropped, to, b, 0x0b000000)
	droppedDone := make(chan error, 1)
	go func() {
		defer dropped.forget()
		for i := 0; i < 4; i++ {
			if i > 0 {
				time.Sleep(time.Second)
			}
			if err := dropped.synSent(); err != nil {
				droppedDone <- err
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
		if dropped.SYNACKs+dropped.RSTs+dropped.BareACKs > 0 || len(dropped.in) > 0 {
			droppedDone <- fmt.Errorf("%s: the dropped SYN was answered", dropped.describe())
			return
		}
		droppedDone <- nil
	}()
	// (d) A: the server closes first and keeps the 4-tuple in TIME_WAIT.
	at(4 * time.Second)
	if err := whole(seed001Reused, a, CloseServer); err != nil {
		return err
	}
	// B's SYN on the same 4-tuple, within a second.
	time.Sleep(300 * time.Millisecond)
	c := n.dial(seed001Reused, to, b, 0x0c000000)
	defer c.forget()
	if err := c.synSent(); err != nil {
		return err
	}
	if err := c.wait(time.Second, func() bool { return c.BareACKs+c.SYNACKs+c.RSTs > 0 }); err != nil {
		return fmt.Errorf("%s: no answer to the SYN into TIME_WAIT: %w", c.describe(), err)
	}
	if c.BareACKs != 1 || c.SYNACKs != 0 {
		return fmt.Errorf("%s: want TIME_WAIT's bare ACK", c.describe())
	}
	n.logf("%v < bare ACK seq %d ack %d: RST seq %d", c.local, c.lastBareACK.Seq, c.lastBareACK.Ack, c.lastBareACK.Ack)
	if err := c.send(fRST, c.lastBareACK.Ack, 0, nil, true); err != nil {
		return err
	}
	// The kernel's SYN retransmission timer: the same SYN after 1 s.
	if err := c.wait(time.Second, nil); err != nil {
		return err
	}
	if err := c.connect(1); err != nil {
		return fmt.Errorf("%s: %w", c.describe(), err)
	}
	if err := c.exchange(100, 100, CloseClient); err != nil {
		return err
	}
	if err := c.close(); err != nil {
		return err
	}
	n.logf("%s", c.describe())
	return errors.Join(<-droppedDone)
}
