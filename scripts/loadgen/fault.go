package main

import (
	"sync/atomic"
	"time"
)

// faultWindow is the span a chaos driver marks with SIGUSR1 (opens) and
// SIGUSR2 (closes) while it breaks something: the messages sent inside it
// get a latency histogram of their own, measured at every recipient
// however late they arrive (live or through a sync).
type faultWindow struct {
	open, close atomic.Int64 // unix nanoseconds; 0: not yet
	lat         *histogram
	sent        atomic.Int64
	errs        atomic.Int64 // error frames received while open
}

// mark opens the window (SIGUSR1) or closes it (SIGUSR2); each happens
// once, a close before an open is ignored.
func (f *faultWindow) mark(open bool) {
	now := time.Now().UnixNano()
	if open {
		f.open.CompareAndSwap(0, now)
		return
	}
	if f.open.Load() != 0 {
		f.close.CompareAndSwap(0, now)
	}
}

// holds reports whether a message sent at t (unix ns) was sent in the
// window.
func (f *faultWindow) holds(t int64) bool {
	o := f.open.Load()
	if o == 0 || t < o {
		return false
	}
	c := f.close.Load()
	return c == 0 || t < c
}

func (f *faultWindow) active() bool { return f.holds(time.Now().UnixNano()) }

func (f *faultWindow) countSend() {
	if f.active() {
		f.sent.Add(1)
	}
}

func (st *stage) faultRecord(sent, lat int64) {
	if st.fault.holds(sent) {
		st.fault.lat.record(lat)
	}
}

func (st *stage) faultErr() {
	if st.fault.active() {
		st.fault.errs.Add(1)
	}
}

// faultResult is the window's figures in the JSON line.
type faultResult struct {
	// StartS and EndS are seconds after sending started; EndS is when
	// sending stopped if the window was never closed.
	StartS  float64        `json:"start_s"`
	EndS    float64        `json:"end_s"`
	Sent    int64          `json:"sent"`
	Errors  int64          `json:"errors"`
	Latency latencySummary `json:"latency_ms"`
}

// result is nil when no window was opened.
func (f *faultWindow) result(sendStart, sendEnd time.Time) *faultResult {
	o := f.open.Load()
	if o == 0 {
		return nil
	}
	end := sendEnd
	if c := f.close.Load(); c != 0 {
		end = time.Unix(0, c)
	}
	return &faultResult{
		StartS: round2(time.Unix(0, o).Sub(sendStart).Seconds()), EndS: round2(end.Sub(sendStart).Seconds()),
		Sent: f.sent.Load(), Errors: f.errs.Load(), Latency: f.lat.summary(),
	}
}

// timelinePoint is one second of a stage (-timeline): what happened in
// it and the p99 of the deliveries received in it.
type timelinePoint struct {
	T         float64 `json:"t"`
	Sent      int64   `json:"sent"`
	Acked     int64   `json:"acked"`
	Delivered int64   `json:"delivered"`
	Errors    int64   `json:"errors"`
	P99MS     float64 `json:"p99_ms"`
	Fault     bool    `json:"fault,omitempty"`
}
