//go:build unix

// Package nofile raises the descriptor limit for the load tools, which
// hold one socket per simulated user.
package nofile

import (
	"fmt"
	"syscall"
)

// Raise lifts the soft RLIMIT_NOFILE to the hard one and describes the
// outcome, warning when even that is below need.
func Raise(need int) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("cannot read RLIMIT_NOFILE: %v", err)
	}
	note := ""
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			note = fmt.Sprintf(" (cannot raise it from %d to %d: %v)", old, lim.Max, err)
			lim.Cur = old
		}
	}
	if lim.Cur < uint64(need) {
		return fmt.Sprintf("WARNING: RLIMIT_NOFILE is %d%s, below the %d this run needs; raise the hard limit (ulimit -Hn) or expect \"too many open files\"", lim.Cur, note, need)
	}
	return fmt.Sprintf("RLIMIT_NOFILE is %d%s", lim.Cur, note)
}
