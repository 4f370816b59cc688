package filter

import (
	"testing"
	"time"
)

// benchExprs are the filters a tcpsentry operator is likely to give.
var benchExprs = []string{
	"tcp",
	"tcp port 80",
	"tcp and not port 22",
	"host 10.0.0.1 and tcp port 443",
	"tcp[tcpflags] & (tcp-rst) != 0",
}

// BenchmarkFilter reports, per expression, the program length and the
// instructions executed per frame (mean over the Ethernet corpus:
// synthetic frames, whole and cut, and the repository's captures) of
// ours and of libpcap's optimized program (tcpdump -ddd), and times
// Program.Match over the corpus, and x/net/bpf's VM on the same program.
//
//	go test -run NONE -bench BenchmarkFilter -benchtime 20x ./ring/filter
func BenchmarkFilter(b *testing.B) {
	requireTcpdump(b)
	frames := corpus(b, linkEthernet)
	for _, expr := range benchExprs {
		b.Run(expr, func(b *testing.B) {
			ours, err := Compile(expr, linkEthernet, Options{})
			if err != nil {
				b.Fatal(err)
			}
			theirs := libpcap(b, expr, linkEthernet)
			if theirs.err != "" {
				b.Fatal(theirs.err)
			}
			var oursSteps, theirSteps int
			for _, f := range frames {
				_, n, err := run(ours, f.data, meta{})
				if err != nil {
					b.Fatal(err)
				}
				oursSteps += n
				if _, n, err = run(theirs.prog, f.data, meta{}); err != nil {
					b.Fatal(err)
				}
				theirSteps += n
			}
			p := mustNew(b, ours)
			b.ResetTimer()
			for b.Loop() {
				for _, f := range frames {
					p.Match(f.data, len(f.data))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
			// x/net/bpf's VM, which Match used before it had the length
			// on the wire, for the comparison in the package doc.
			vm := vmFor(ours)
			start := time.Now()
			for range b.N {
				for _, f := range frames {
					vm.Run(f.data)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*len(frames)), "vm-ns/frame")
			b.ReportMetric(float64(len(frames)), "frames")
			b.ReportMetric(float64(len(ours)), "insns")
			b.ReportMetric(float64(len(theirs.prog)), "libpcap-insns")
			b.ReportMetric(float64(oursSteps)/float64(len(frames)), "steps/frame")
			b.ReportMetric(float64(theirSteps)/float64(len(frames)), "libpcap-steps/frame")
		})
	}
}
