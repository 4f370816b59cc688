//go:build !linux

package ring

// AdviseHugePages does nothing where there are no transparent huge pages.
func AdviseHugePages(s any) {}

// CollapseHugePages does nothing where there are no transparent huge pages.
func CollapseHugePages(s any) {}
