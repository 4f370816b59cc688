//go:build !purego

package flowtable

// prefetchIndex starts reading index[p] for every p in pos, and
// prefetchSlab the 64-byte line l of the Conn slab (line l%4 of
// conns[l/4]) for every l in lines: prefetch instructions, which do not
// wait for the memory, so that the misses of a whole group of packets
// are in flight at once while the worker goes on. A prefetch never
// faults. prefetchLinks does the same for links[i] for every i in
// slots. They return 0: see prefetch_other.go.
//
//go:noescape
func prefetchIndex(index []uint64, pos []uint32) uint64

//go:noescape
func prefetchSlab(conns []Conn, lines []uint32) uint64

//go:noescape
func prefetchLinks(links []links, slots []uint32) uint64
