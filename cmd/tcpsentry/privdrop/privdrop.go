// Package privdrop gives up, once tcpsentry run has opened its sockets,
// the privileges it no longer needs: it switches the process to another
// user and clears its capabilities.
//
// Linux keeps credentials per thread, and a Go program runs on several
// threads (the capture workers are locked to theirs), so every change here
// is made on all threads at once: syscall.Setgroups, Setresgid and
// Setresuid do that since Go 1.16 (through the C library when cgo is
// linked); golang.org/x/sys/unix.Setgroups does not (it changes the calling
// thread only), so it is not used. Capabilities are cleared with
// syscall.AllThreadsSyscall, which binaries linked with cgo do not support:
// ClearCapabilities then returns ErrCgo.
package privdrop

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// User is a user to switch to.
type User struct {
	Name     string
	UID, GID int
	Groups   []int // supplementary groups, as initgroups(3) would set them
}

// ErrNoUser is Lookup's error for a name the user database lacks.
var ErrNoUser = errors.New("no such user")

// ErrCgo says that the capabilities could not be cleared on every thread
// because the binary is linked with cgo.
var ErrCgo = errors.New("this binary is linked with cgo, where capabilities cannot be cleared on every thread (build it with CGO_ENABLED=0)")

// Lookup finds a user by name in the system's user database.
func Lookup(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return User{}, ErrNoUser
		}
		return User{}, err
	}
	out := User{Name: u.Username}
	if out.UID, err = strconv.Atoi(u.Uid); err != nil {
		return User{}, fmt.Errorf("uid %q: not a number", u.Uid)
	}
	if out.GID, err = strconv.Atoi(u.Gid); err != nil {
		return User{}, fmt.Errorf("gid %q: not a number", u.Gid)
	}
	out.Groups = []int{out.GID}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != out.GID {
				out.Groups = append(out.Groups, g)
			}
		}
	}
	return out, nil
}
