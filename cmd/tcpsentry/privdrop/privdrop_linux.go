//go:build linux

package privdrop

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SwitchUser makes u the real, effective and saved user and group of every
// thread, with u's groups as the supplementary ones. Leaving uid 0 this way
// also clears the permitted, effective and ambient capabilities of every
// thread (capabilities(7), "Effect of user ID changes on capabilities").
func SwitchUser(u User) error {
	// Groups first: once the uid is not 0 any more they cannot change.
	if err := syscall.Setgroups(u.Groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setresgid(u.GID, u.GID, u.GID); err != nil {
		return fmt.Errorf("setresgid %d: %w", u.GID, err)
	}
	if err := unix.Setresuid(u.UID, u.UID, u.UID); err != nil {
		return fmt.Errorf("setresuid %d: %w", u.UID, err)
	}
	r, e, s := unix.Getresuid()
	if r != u.UID || e != u.UID || s != u.UID {
		return fmt.Errorf("setresuid %d: still uid %d/%d/%d", u.UID, r, e, s)
	}
	return nil
}

// Capabilities returns the effective and permitted capability sets of the
// calling thread, one bit per capability number.
func Capabilities() (effective, permitted uint64, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]unix.CapUserData
	if err := unix.Capget(&hdr, &d[0]); err != nil {
		return 0, 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(d[1].Effective)<<32 | uint64(d[0].Effective), uint64(d[1].Permitted)<<32 | uint64(d[0].Permitted), nil
}

// ClearCapabilities empties the effective, permitted and inheritable (and
// so the ambient) capability sets of every thread. It does nothing when
// this thread holds none.
func ClearCapabilities() error {
	eff, perm, err := Capabilities()
	if err != nil || eff|perm == 0 {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&none[0])), 0)
	switch errno {
	case 0:
		return nil
	case syscall.ENOTSUP:
		return ErrCgo
	}
	return fmt.Errorf("capset: %w", errno)
}
