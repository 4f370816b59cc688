package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

// fullEvent is an event with the fields the tshark cross-check reads.
type fullEvent struct {
	Event struct {
		Action string `json:"action"`
		End    string `json:"end"`
	} `json:"event"`
	Source struct {
		Port int `json:"port"`
	} `json:"source"`
	Destination struct {
		Port int `json:"port"`
	} `json:"destination"`
	Tcpsentry struct {
		Count    int                        `json:"count"`
		Evidence map[string]json.RawMessage `json:"evidence"`
	} `json:"tcpsentry"`
}

func (e fullEvent) int(t *testing.T, k string) int64 {
	t.Helper()
	var v int64
	if err := json.Unmarshal(e.Tcpsentry.Evidence[k], &v); err != nil {
		t.Fatalf("%s evidence %s: %v", e.Event.Action, k, err)
	}
	return v
}

// until is a display filter for frames up to the event's end (its
// microsecond timestamp, rounded up).
func (e fullEvent) until(t *testing.T) string {
	tm, err := time.Parse(time.RFC3339Nano, e.Event.End)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("frame.time_epoch <= %d.%06d", tm.Unix(), tm.Nanosecond()/1000+1)
}

// TestTsharkAgrees checks the raw facts behind the sensor's events against
// Wireshark's own TCP analysis (tshark) on the committed kernel captures:
// the SYN/ACKs it calls retransmitted, the request retransmissions, the
// SYNs of an unanswered attempt, the refusals, the RST that carries an
// invalid ACK's value, and the RST endings of a storm.
func TestTsharkAgrees(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is not installed (Debian package tshark)")
		}
		t.Skip("tshark is not installed (Debian package tshark)")
	}
	checked := map[string]int{}
	for _, sc := range allCaptures() {
		path := filepath.Join("../../testdata", sc.File)
		var out, errb bytes.Buffer
		if code := run([]string{"replay", path}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", sc.File, code, errb.String())
		}
		count := func(filter string) int {
			n, err := netlab.TsharkCount(path, filter)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		refused := map[int]int{}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if line == "" {
				continue
			}
			var e fullEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			cp, sp := e.Source.Port, e.Destination.Port
			name := fmt.Sprintf("%s %s :%d", sc.File, e.Event.Action, cp)
			switch e.Event.Action {
			case "synack_retransmit_after_ack":
				want := e.int(t, "synack_retransmits_after_ack")
				got := count(fmt.Sprintf("tcp.analysis.retransmission && tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.srcport==%d && tcp.dstport==%d && %s", sp, cp, e.until(t)))
				if int64(got) != want {
					t.Errorf("%s: %d SYN/ACKs re-sent, tshark sees %d", name, want, got)
				}
			case "request_unanswered":
				want := e.int(t, "retransmits")
				got := count(fmt.Sprintf("tcp.analysis.retransmission && tcp.len>0 && tcp.srcport==%d && tcp.dstport==%d && %s", cp, sp, e.until(t)))
				if int64(got) != want {
					t.Errorf("%s: %d retransmissions, tshark sees %d", name, want, got)
				}
			case "syn_unanswered":
				want := e.int(t, "syn_retransmits")
				got := count(fmt.Sprintf("tcp.analysis.retransmission && tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.srcport==%d && tcp.dstport==%d && %s", cp, sp, e.until(t)))
				if int64(got) != want {
					t.Errorf("%s: %d SYN retransmissions, tshark sees %d", name, want, got)
				}
			case "connection_refused":
				refused[sp] += e.Tcpsentry.Count
			case "rst_after_invalid_ack":
				got := count(fmt.Sprintf("tcp.flags.reset==1 && tcp.srcport==%d && tcp.seq_raw==%d", sp, e.int(t, "rst_seq")))
				if got == 0 || e.int(t, "rst_seq") != e.int(t, "ack") {
					t.Errorf("%s: no RST with seq %d (the invalid ACK %d) in tshark", name, e.int(t, "rst_seq"), e.int(t, "ack"))
				}
			case "rst_storm":
				got := count(fmt.Sprintf("tcp.flags.reset==1 && tcp.srcport==%d && %s", sp, e.until(t)))
				if want := e.int(t, "rst_endings"); int64(got) != want {
					t.Errorf("%s: %d RST endings, tshark sees %d RSTs", name, want, got)
				}
			default:
				continue
			}
			checked[e.Event.Action]++
		}
		for port, n := range refused {
			// Every RST/ACK from the closed port answers one SYN.
			if got := count(fmt.Sprintf("tcp.flags.reset==1 && tcp.flags.ack==1 && tcp.srcport==%d", port)); got != n {
				t.Errorf("%s: %d refusals of port %d (counts included), tshark sees %d RST/ACKs", sc.File, n, port, got)
			}
			checked["connection_refused"]++
		}
	}
	for _, a := range []string{"synack_retransmit_after_ack", "request_unanswered", "syn_unanswered", "connection_refused", "rst_after_invalid_ack", "rst_storm"} {
		if checked[a] == 0 {
			t.Errorf("no %s event was checked", a)
		}
	}
	t.Logf("checked against tshark: %v", checked)
}
