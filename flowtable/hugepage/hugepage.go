// Package hugepage asks the kernel to back the sensor's large tables with
// 2 MiB pages.
//
// A lookup in a table of a million flows lands on a random page. With
// 4 KiB pages nearly every one misses the TLB and walks the page tables
// (in a VM, the guest's and the host's) before the cache line itself is
// fetched; 2 MiB pages cover a gigabyte with 512 TLB entries, so the walk
// goes and one random access is one cache miss. DPDK puts its flow tables
// in huge pages for the same reason.
package hugepage

// Size is the huge page size asked for.
const Size = 2 << 20
