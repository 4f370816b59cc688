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
)

// liveResults is what bench/live -json writes.
type liveResults struct {
	Date    string
	Packets int
	Readers []struct {
		Key  string `json:"key"`
		Name string `json:"name"`
	} `json:"readers"`
	Points []struct {
		Reader   string  `json:"reader"`
		Rate     int     `json:"rate"` // offered packets/s; 0: top speed
		Sent     uint64  `json:"sent"`
		SentPPS  float64 `json:"sent_pps"`
		Received uint64  `json:"received"`
		RxPPS    float64 `json:"rx_pps"`
		Lost     uint64  `json:"lost"`
		LossPct  float64 `json:"loss_pct"`
		Drops    uint64  `json:"drops"`
		CPUNs    float64 `json:"cpu_ns_per_packet"`
	} `json:"points"`
	Capacity []struct {
		Reader    string  `json:"reader"`
		MedianPPS float64 `json:"median_pps"`
		Runs      int     `json:"runs"`
	} `json:"capacity"`
	BaselinePPS float64 `json:"baseline_pps"`
	// Markdown is bench/live's own report.
	Markdown string `json:"-"`
	Command  string `json:"-"`
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
