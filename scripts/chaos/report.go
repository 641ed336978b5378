package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// report is one scenario's outcome: loadgen's figures, what the fault
// did, and each promise checked.
type report struct {
	Scenario string  `json:"scenario"`
	Title    string  `json:"title"`
	Users    int     `json:"users"`
	Rate     float64 `json:"rate"`

	Sent              int64            `json:"sent"`
	Acked             int64            `json:"acked"`
	Expected          int64            `json:"expected_deliveries"`
	Delivered         int64            `json:"delivered"`
	Stored            int64            `json:"stored"`
	StoredAcked       int64            `json:"stored_acked"`
	Lost              int64            `json:"lost"`
	Duplicates        int64            `json:"duplicates"`
	DuplicateMessages int64            `json:"duplicate_messages"`
	DuplicateStored   int64            `json:"duplicate_stored"`
	OutOfOrder        int64            `json:"out_of_order"`
	Errors            map[string]int64 `json:"errors"`
	P99FaultMS        float64          `json:"p99_fault_ms"`
	MaxFaultMS        float64          `json:"max_fault_ms"`
	P99MS             float64          `json:"p99_ms"`
	FaultWindowS      [2]float64       `json:"fault_window_s"`
	Reconnects        int64            `json:"reconnects"`
	Resends           int64            `json:"resends"`
	// Fault holds what the fault itself measured (failover time, backlog…).
	Fault  map[string]any `json:"fault"`
	Checks []check        `json:"checks"`
	Pass   bool           `json:"pass"`
	Error  string         `json:"error,omitempty"`
}

// check is one promise and whether it held.
type check struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Got  string `json:"got"`
}

func (r *report) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, check{Name: name, OK: ok, Got: fmt.Sprintf(format, args...)})
}

// fill copies loadgen's figures and checks the promises every scenario
// shares: nothing acked lost or stored twice, live order kept.
func (r *report) fill(lg *lgResult) {
	r.Sent, r.Acked, r.Expected, r.Delivered = lg.Sent, lg.Acked, lg.Expected, lg.Received
	r.Lost, r.Duplicates, r.DuplicateMessages, r.OutOfOrder = lg.Lost, lg.Duplicates, lg.DuplicateMessages, lg.OutOfOrder
	r.Errors = lg.Errors
	r.P99MS = lg.Latency.P99
	if f := lg.Fault; f != nil {
		r.P99FaultMS, r.MaxFaultMS, r.FaultWindowS = f.Latency.P99, f.Latency.Max, [2]float64{f.StartS, f.EndS}
	}
	if v := lg.Recovery; v != nil {
		r.Reconnects, r.Resends = v.Reconnects, v.Resends
	}
	r.check("traffic", lg.Acked > 0 && lg.Failure == "", "%d sent, %d acked%s", lg.Sent, lg.Acked, failure(lg.Failure))
	r.check("no acked message lost", lg.Lost == 0, "%d of %d expected deliveries missing", lg.Lost, lg.Expected)
	r.check("exactly once", lg.DuplicateMessages == 0, "%d client ids under two seqs", lg.DuplicateMessages)
	r.check("in order", lg.OutOfOrder == 0, "%d live messages out of order", lg.OutOfOrder)
	unexpected := map[string]int64{}
	for code, n := range lg.Errors {
		if !expectedDuringFault(code) {
			unexpected[code] = n
		}
	}
	r.check("no unexpected error", len(unexpected) == 0, "%s", formatCounts(unexpected))
	if s := lg.Store; s != nil {
		r.Stored, r.StoredAcked, r.DuplicateStored = s.Stored, s.Found, s.DuplicateCIDs
		r.check("every acked message stored once", s.Complete && s.DuplicateCIDs == 0,
			"%d of %d acked stored, %d documents, %d stored twice", s.Found, s.Checked, s.Stored, s.DuplicateCIDs)
	} else {
		r.check("every acked message stored once", false, "no store check in loadgen's result")
	}
}

// expectedDuringFault: drops and refusals the reference client recovers
// from (loadgen's own list, reconnect included): busy is a node behind
// its load refusing sends, which the client resends with the same cid.
func expectedDuringFault(code string) bool {
	switch code {
	case "unavailable", "rate_limited", "busy", "conn_lost", "write":
		return true
	}
	return strings.HasPrefix(code, "closed_")
}

func failure(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func formatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func (r *report) judge() {
	r.Pass = r.Error == "" && len(r.Checks) > 0
	for _, c := range r.Checks {
		r.Pass = r.Pass && c.OK
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s ==\n", r.Scenario, r.Title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", r.Error)
	}
	fmt.Fprintf(tw, "load\t%d users, %g msg/s over 3 nodes\n", r.Users, r.Rate)
	fmt.Fprintf(tw, "sent / acked\t%d / %d\n", r.Sent, r.Acked)
	fmt.Fprintf(tw, "delivered\t%d of %d expected (%d lost, %d duplicate copies dropped by seq)\n", r.Delivered, r.Expected, r.Lost, r.Duplicates)
	fmt.Fprintf(tw, "stored\t%d acked messages stored, %d documents, %d stored twice\n", r.StoredAcked, r.Stored, r.DuplicateStored)
	fmt.Fprintf(tw, "exactly once / order\t%d duplicate messages, %d out of order\n", r.DuplicateMessages, r.OutOfOrder)
	fmt.Fprintf(tw, "errors\t%s\n", formatCounts(r.Errors))
	fmt.Fprintf(tw, "reconnects / resends\t%d / %d\n", r.Reconnects, r.Resends)
	fmt.Fprintf(tw, "delivery p99\t%.0f ms in the fault window (%.1fs–%.1fs, max %.0f ms), %.0f ms overall\n",
		r.P99FaultMS, r.FaultWindowS[0], r.FaultWindowS[1], r.MaxFaultMS, r.P99MS)
	for _, k := range slices.Sorted(maps.Keys(r.Fault)) {
		fmt.Fprintf(tw, "fault: %s\t%v\n", k, r.Fault[k])
	}
	for _, c := range r.Checks {
		v := "ok"
		if !c.OK {
			v = "BROKEN"
		}
		fmt.Fprintf(tw, "promise: %s\t%s (%s)\n", c.Name, v, c.Got)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(tw, "verdict\t%s\n", verdict)
	tw.Flush()
}

func (r *report) jsonLine() string {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Sprintf(`{"scenario":%q,"error":%q}`, r.Scenario, err.Error())
	}
	return string(b)
}
