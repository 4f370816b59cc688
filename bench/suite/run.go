//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// runner starts measuring children: this program again.
type runner struct {
	self     string
	progress io.Writer
}

// childRun is what a child process cost, from its rusage.
type childRun struct {
	MaxRSS int64 // bytes
	CPU    time.Duration
}

// child runs a child with args and decodes its JSON result into out.
// When feed is set, it writes the child's stdin (a capture streamed from
// the generator) while the child reads.
func (r *runner) child(ctx context.Context, out any, feed func(io.Writer) error, args ...string) (childRun, error) {
	cmd := exec.CommandContext(ctx, r.self, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var feedErr chan error
	if feed != nil {
		in, err := cmd.StdinPipe()
		if err != nil {
			return childRun{}, err
		}
		feedErr = make(chan error, 1)
		defer func() {
			if feedErr != nil {
				<-feedErr
			}
		}()
		if err := cmd.Start(); err != nil {
			feedErr = nil
			return childRun{}, err
		}
		go func() {
			bw := bufio.NewWriterSize(in, 1<<20)
			err := feed(bw)
			if err == nil {
				err = bw.Flush()
			}
			in.Close()
			feedErr <- err
		}()
	} else if err := cmd.Start(); err != nil {
		return childRun{}, err
	}
	err := cmd.Wait()
	var cr childRun
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		cr.MaxRSS = ru.Maxrss << 10
		cr.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return cr, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	if feedErr != nil {
		ferr := <-feedErr
		feedErr = nil
		if ferr != nil {
			return cr, fmt.Errorf("%s: feeding the capture: %w", strings.Join(args, " "), ferr)
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return cr, fmt.Errorf("%s: bad result: %w", strings.Join(args, " "), err)
	}
	return cr, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (r *runner) logf(format string, args ...any) {
	if r.progress != nil {
		fmt.Fprintf(r.progress, "suite: "+format+"\n", args...)
	}
}
