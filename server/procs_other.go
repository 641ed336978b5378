//go:build !unix

package main

import "time"

// processCPU cannot say here; the processor tuner stays off.
func processCPU() (time.Duration, bool) { return 0, false }
