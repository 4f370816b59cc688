//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
)

// brokerChildEnv makes this program a broker in a process of its own (as
// an external NATS server is to tcpsentry replay --nats): it prints the
// broker's URL, serves until its standard input closes, then removes its
// store.
const brokerChildEnv = "TCPSENTRY_BENCH_EVENTS_BROKER"

func brokerChild() error {
	dir, err := os.MkdirTemp("", "tcpsentry-bench-events-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		return err
	}
	defer b.Shutdown()
	fmt.Println(b.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// otherProcess is a broker in a child process.
type otherProcess struct {
	cmd   *exec.Cmd
	stdin io.Closer
	URL   string
}

func startOtherProcess() (*otherProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), brokerChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	o := &otherProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if o.URL = strings.TrimSpace(line); err != nil || !strings.HasPrefix(o.URL, "nats://") {
		o.stop()
		return nil, fmt.Errorf("broker process: %q, %v", line, err)
	}
	return o, nil
}

// cpuTime is the CPU time the child has used so far (from /proc, in clock
// ticks of 10 ms).
func (o *otherProcess) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", o.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	return time.Duration(u+k) * 10 * time.Millisecond
}

func (o *otherProcess) stop() error {
	o.stdin.Close()
	return o.cmd.Wait()
}
