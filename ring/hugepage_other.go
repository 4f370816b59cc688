//go:build !linux

package ring

// AdviseHugePages does nothing where there are no transparent huge pages.
func AdviseHugePages(s any) {}

// CollapseHugePages does nothing where there are no transparent huge pages.
func CollapseHugePages(s any) {}

// PopulatePages does nothing here: pages are faulted in by their first
// touch.
func PopulatePages(s any, from, to int) bool { return false }

// Resident cannot tell here: ok is false.
func Resident(s any) (size, resident int64, ok bool) { return 0, 0, false }
