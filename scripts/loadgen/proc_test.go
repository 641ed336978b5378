package main

import "testing"

// TestHostTicksKeepStealApart: time the hypervisor took is reported as
// steal, neither as busy (it is no process's CPU) nor, through guest
// time, counted twice.
func TestHostTicksKeepStealApart(t *testing.T) {
	//                 user nice system idle iowait irq softirq steal guest guest_nice
	got, err := parseHostCPU("cpu  100 5 50 1000 20 3 2 7 40 1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (hostTicks{busy: 160, steal: 7, total: 1187}); got != want {
		t.Errorf("ticks %+v, want %+v", got, want)
	}
	// Kernels before 2.6.11 stop after irq and softirq: no steal.
	if got, err := parseHostCPU("cpu 10 0 5 80 5 0 0"); err != nil || got != (hostTicks{busy: 15, total: 100}) {
		t.Errorf("short line: %+v, %v", got, err)
	}
	if _, err := parseHostCPU("intr 1 2 3"); err == nil {
		t.Error("a line that is not the aggregate cpu line parsed")
	}
}
