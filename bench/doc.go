// Package bench measures tcpsentry: BenchmarkReplay runs the whole replay
// pipeline over recorded traffic from memory. Sub-packages hold the
// traffic generators (workload, with ground truth and the command gen;
// traffic, the plain one), the lab of real kernel TCP stacks in network
// namespaces (netlab), the references and peer tools measured in the same
// run (refs, peers), charts (plot), and the benchmark commands: suite (the
// replay benchmark in one command, with its report), events and live;
// xcore times a cache line's trip between two CPUs, which on a VM moves
// with where the host runs them.
package bench
