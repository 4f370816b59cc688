//go:build !amd64 || purego

package flowtable

// Without a prefetch instruction (only amd64 has the assembly; the tag
// purego leaves it out there too, to test this file), the read
// ahead loads a word of each line: a tight loop of independent loads
// still overlaps their misses, though each holds the processor until it
// is served. The sum keeps the compiler from dropping the loads.

func prefetchIndex(index []uint64, pos []uint32) uint64 {
	var v uint64
	for _, p := range pos {
		v += index[p]
	}
	return v
}

func prefetchSlab(conns []Conn, lines []uint32) uint64 {
	var v uint64
	for _, l := range lines {
		c := &conns[l/linesPerConn]
		switch l % linesPerConn {
		case 0:
			v += uint64(c.Key.PortA)
		case 1:
			v += uint64(c.Side[Client].Flags)
		default:
			v += uint64(c.EndTS)
		}
	}
	return v
}

func prefetchLinks(links []links, slots []uint32) uint64 {
	var v uint64
	for _, i := range slots {
		v += uint64(links[i].next)
	}
	return v
}
