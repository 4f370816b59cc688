// Package filter compiles tcpdump filter expressions (pcap-filter(7)) to
// classic BPF in pure Go, so the default build needs no cgo and no libpcap.
package filter
