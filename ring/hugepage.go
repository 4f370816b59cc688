package ring

// HugePageSize is the page size AdviseHugePages and CollapseHugePages ask
// for.
//
// A lookup in a table of a million flows lands on a random page. With
// 4 KiB pages nearly every one misses the TLB and walks the page tables
// (in a VM, the guest's and the host's) before the cache line itself is
// fetched; 2 MiB pages cover a gigabyte with 512 TLB entries. DPDK keeps
// its flow tables in huge pages for the same reason. The tables belong to
// flowtable and detectors, which make no syscalls: the sensor hands their
// arrays here.
const HugePageSize = 2 << 20
