// Package bench measures tcpsentry: BenchmarkReplay runs the whole replay
// pipeline over recorded traffic from memory. Sub-packages hold the
// traffic generator (traffic) and the lab of real kernel TCP stacks in
// network namespaces (netlab).
package bench
