package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/privdrop"
)

// defaultUser is who run switches to when started as root, if that user
// exists.
const defaultUser = "tcpsentry"

// keepPrivileges is set by tests that call run in-process: the switch
// would apply to the whole test process.
var keepPrivileges bool

// userFlag is --user; set tells an explicit --user "" from no flag.
type userFlag struct {
	name string
	set  bool
}

func (u *userFlag) String() string { return u.name }
func (u *userFlag) Set(v string) error {
	u.name, u.set = v, true
	return nil
}

// privPlan is what run does with its privileges once its sockets are open.
type privPlan struct {
	to   *privdrop.User // switch to this user; nil: stay who we are
	warn string         // a warning for the start, if any
}

// planPrivileges decides, before anything is opened, whom run becomes:
// as root, the --user (default tcpsentry, when it exists); otherwise the
// user it is (capabilities from setcap are cleared all the same).
func planPrivileges(f userFlag, euid int, lookup func(string) (privdrop.User, error)) (privPlan, error) {
	if !f.set {
		if euid != 0 {
			return privPlan{}, nil // not root: nothing to switch from
		}
		u, err := lookup(defaultUser)
		if errors.Is(err, privdrop.ErrNoUser) {
			return privPlan{warn: fmt.Sprintf("running as root: there is no user %s to switch to once the sockets are open; create it (useradd --system --no-create-home --shell /usr/sbin/nologin %s), name another with --user, or say --user root", defaultUser, defaultUser)}, nil
		}
		if err != nil {
			return privPlan{warn: fmt.Sprintf("running as root: looking up user %s: %v", defaultUser, err)}, nil
		}
		if u.UID == 0 {
			return privPlan{}, nil
		}
		return privPlan{to: &u}, nil
	}
	if f.name == "" || f.name == "root" {
		return privPlan{}, nil // opted out
	}
	u, err := lookup(f.name)
	switch {
	case err != nil:
		return privPlan{}, fmt.Errorf("--user %s: %v", f.name, err)
	case u.UID == euid:
		return privPlan{}, nil
	case euid != 0:
		return privPlan{}, fmt.Errorf("--user %s: switching users needs root, and tcpsentry runs as uid %d; leave --user out (grant the capabilities with setcap instead)", f.name, euid)
	}
	return privPlan{to: &u}, nil
}

// dropPrivileges switches to the planned user and clears every capability:
// nothing after the sockets are open needs one (the rings, poll, the
// kernel counters and closing work without, and no socket is ever opened
// again). Linked with cgo, a non-root process keeps its capabilities, and
// says so.
func dropPrivileges(p privPlan, quiet bool, log *slog.Logger) error {
	if p.warn != "" {
		log.Warn(p.warn)
	}
	if p.to != nil {
		u := p.to
		if err := privdrop.SwitchUser(*u); err != nil {
			return fmt.Errorf("switching to user %s (uid %d, gid %d) once the sockets are open: %v", u.Name, u.UID, u.GID, err)
		}
	}
	err := privdrop.ClearCapabilities()
	if errors.Is(err, privdrop.ErrCgo) {
		// Staying root was warned about or asked for.
		if os.Geteuid() != 0 {
			log.Warn("keeping the capabilities after the sockets are open", "error", err.Error())
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("clearing the capabilities once the sockets are open: %v", err)
	}
	if p.to != nil && !quiet {
		log.Info("sockets open; now running as another user, without capabilities", "user", p.to.Name, "uid", p.to.UID, "gid", p.to.GID)
	}
	return nil
}

// ownDataDir hands the embedded broker's store to u, who runs the broker
// after the switch: the directory is created if missing, and an empty one
// or one holding only a store (jetstream/, left by a run as root) is given
// to u with everything in it. Anything else there is not chowned: that
// is the operator's call.
func ownDataDir(dir string, u *privdrop.User) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// Parents readable by everyone, or u could not reach the store.
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("--data-dir %s: %s", dir, describeCreateError(err))
		}
		if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("--data-dir %s: %s", dir, describeCreateError(err))
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %s", dir, describeOpenError(err))
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %s", dir, describeOpenError(err))
	}
	for _, e := range ents {
		if e.Name() != "jetstream" {
			if owner(real) == u.UID {
				return nil
			}
			return fmt.Errorf("--data-dir %s holds more than a tcpsentry store and is not user %s's, who runs the broker once the sockets are open: chown -R %s %s, or choose another --data-dir or --user", dir, u.Name, u.Name, dir)
		}
	}
	return filepath.WalkDir(real, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, u.UID, u.GID); err != nil {
			return fmt.Errorf("--data-dir %s: handing it to user %s: %v", dir, u.Name, err)
		}
		return nil
	})
}
