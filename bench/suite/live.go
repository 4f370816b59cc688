//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tcpsentry/tcpsentry/bench/report"
)

// liveResults is what bench/live -json writes, with its own report.
type liveResults struct {
	report.LiveResults
	Markdown string // bench/live's Markdown report (kept, so that -render can write it again)
	Command  string
}

// runLive runs bench/live from the module's root and reads its results;
// when it cannot run, it says why instead.
func runLive(ctx context.Context, scratch string, quick bool, extra []string, progress io.Writer) (*liveResults, string) {
	if os.Geteuid() != 0 {
		return nil, "needs root (network namespaces, AF_PACKET)"
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, "needs the go command to build bench/live"
	}
	mod, err := exec.CommandContext(ctx, gobin, "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(mod)))
	if err != nil || root == "." || root == "" {
		return nil, "run it from the tcpsentry module (go env GOMOD is empty)"
	}
	js := filepath.Join(scratch, "live.json")
	var flags []string
	if quick {
		flags = append(flags, "-quick")
	}
	flags = append(flags, extra...)
	args := append([]string{"run", "./bench/live", "-json", js}, flags...)
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Dir = root
	var md bytes.Buffer
	cmd.Stdout, cmd.Stderr = &md, progress
	fmt.Fprintf(progress, "suite: live: go %s\n", strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Sprintf("bench/live failed: %v", err)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		return nil, fmt.Sprintf("bench/live wrote no results: %v", err)
	}
	var lr liveResults
	if err := json.Unmarshal(b, &lr); err != nil {
		return nil, fmt.Sprintf("bench/live results: %v", err)
	}
	lr.Markdown = md.String()
	lr.Command = strings.Join(append([]string{"sudo go run ./bench/live"}, flags...), " ")
	return &lr, ""
}
