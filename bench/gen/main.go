// Command gen writes benchmark traffic with its ground truth:
//
//	go run ./bench/gen -o traffic.pcap [-connections 100000] [-concurrent 10000] [-seed 1] ...
//
// It writes the capture (pcap, or pcapng when the name ends in .pcapng
// or -format pcapng) and, beside it, NAME.truth.jsonl: one JSON line per
// event tcpsentry must report (type, cause, client, server). See
// bench/workload for what the traffic holds.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tcpsentry/tcpsentry/bench/workload"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gen:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	o := workload.DefaultOptions()
	out := fs.String("o", "", "capture file to write (required); .pcapng writes pcapng")
	format := fs.String("format", "", "pcap or pcapng (default: from the file name, else pcap)")
	truth := fs.String("truth", "", "ground truth file (default: beside the capture, NAME.truth.jsonl)")
	fs.IntVar(&o.Connections, "connections", o.Connections, "ordinary connections")
	fs.IntVar(&o.Concurrent, "concurrent", o.Concurrent, "connections open at once")
	fs.Float64Var(&o.IPv6Share, "ipv6", o.IPv6Share, "share of connections over IPv6")
	fs.Float64Var(&o.VLANShare, "vlan", o.VLANShare, "share of connections tagged 802.1Q")
	fs.Float64Var(&o.LossRate, "loss", o.LossRate, "chance that a data segment is lost after the sensor (and sent again)")
	fs.IntVar(&o.Exchanges, "exchanges", o.Exchanges, "request/response exchanges per connection: 1 to this many")
	fs.IntVar(&o.MaxResponse, "max-response", o.MaxResponse, "largest response in bytes (the mix is cut there)")
	fs.DurationVar(&o.ThinkMax, "think-max", o.ThinkMax, "longest pause of a client between a response and its next move (long: many idle keep-alive connections open at once)")
	fs.DurationVar(&o.Ramp, "ramp", o.Ramp, "time over which the slots start their first connections (concurrent/ramp is the SYN rate at the start)")
	fs.Float64Var(&o.AnomalyRate, "anomaly-rate", o.AnomalyRate, "instances of each anomaly kind per ordinary connection")
	kinds := fs.String("kinds", "all", "anomaly kinds, comma-separated: "+strings.Join(kindNames(), ","))
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (the same seed writes the same file)")
	fs.IntVar(&o.Snaplen, "snaplen", o.Snaplen, "bytes stored per frame")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	switch f := *format; {
	case f == "pcapng" || f == "" && strings.HasSuffix(*out, ".pcapng"):
		o.Format = workload.PCAPNG
	case f == "pcap" || f == "":
	default:
		return fmt.Errorf("-format %q: want pcap or pcapng", f)
	}
	if *kinds != "all" {
		o.Kinds = []workload.Kind{}
		for _, s := range strings.Split(*kinds, ",") {
			k, ok := workload.ParseKind(strings.TrimSpace(s))
			if !ok {
				return fmt.Errorf("-kinds: unknown kind %q (known: %s)", s, strings.Join(kindNames(), ","))
			}
			o.Kinds = append(o.Kinds, k)
		}
	}
	if *truth == "" {
		*truth = strings.TrimSuffix(*out, filepath.Ext(*out)) + ".truth.jsonl"
	}
	st, err := writeFile(*out, func(w *bufio.Writer) (workload.Stats, error) { return workload.Write(w, o) })
	if err != nil {
		return err
	}
	if _, err := writeFile(*truth, func(w *bufio.Writer) (workload.Stats, error) {
		return st, workload.WriteTruth(w, st.Truth)
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %s: %d packets (%.1f MB on the wire), %d connections (at most %d flows open at once, %d held in a sensor's table), %d flows, %.1f s of traffic\n",
		*out, st.Packets, float64(st.Bytes)/1e6, st.Connections, st.MaxOpen, st.MaxHeld, st.Flows, float64(st.Last-st.First)/1e9)
	fmt.Fprintf(os.Stderr, "gen: wrote %s: %d events expected\n", *truth, len(st.Truth))
	return nil
}

func kindNames() []string {
	var s []string
	for k := range workload.NumKinds {
		s = append(s, k.String())
	}
	return s
}

// writeFile writes name through fill, removing it when anything fails.
func writeFile(name string, fill func(*bufio.Writer) (workload.Stats, error)) (workload.Stats, error) {
	f, err := os.Create(name)
	if err != nil {
		return workload.Stats{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := fill(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return st, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}
