package workload

import (
	"bufio"
	"os"
)

// WriteFile writes the traffic of o as a pcap file name (see Write); the
// file is removed when anything fails, so that no partial capture is
// left to be mistaken for a whole one.
func WriteFile(name string, o Options) (Stats, error) {
	f, err := os.Create(name)
	if err != nil {
		return Stats{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := Write(w, o)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		// Written back now, so that a benchmark reading the capture next
		// does not share the CPUs with its writeback (800 MB were still
		// dirty 1 s after a 3 GB capture was written).
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
	}
	return st, err
}
