//go:build !linux

package rawio

import "os"

// WriteAt writes all of b at off in f; elsewhere than Linux through
// package os.
func WriteAt(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) }
