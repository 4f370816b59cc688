//go:build !linux

package privdrop

import "errors"

var errNotLinux = errors.New("dropping privileges is implemented on Linux only")

// SwitchUser is implemented on Linux only.
func SwitchUser(User) error { return errNotLinux }

// Capabilities reports none outside Linux.
func Capabilities() (effective, permitted uint64, err error) { return 0, 0, nil }

// ClearCapabilities has nothing to clear outside Linux.
func ClearCapabilities() error { return nil }
