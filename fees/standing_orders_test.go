package fees

import (
	"testing"
	"time"
)

// TestMonthlyRunsDoNotDrift checks that an order for the 29th–31st runs on
// the last day of shorter months and returns to its day afterwards.
func TestMonthlyRunsDoNotDrift(t *testing.T) {
	cases := []struct {
		day  int
		from string
		want []string
	}{
		{31, "2027-01-01T00:00:00+09:00", []string{"2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"}},
		{30, "2027-01-30T06:00:00+09:00", []string{"2027-02-28", "2027-03-30", "2027-04-30"}},
		{29, "2028-01-29T07:00:00+09:00", []string{"2028-02-29", "2028-03-29"}}, // a leap year keeps the 29th
		{15, "2026-12-15T05:59:00+09:00", []string{"2026-12-15", "2027-01-15"}}, // before 06:00 the same day still runs
		{1, "2026-12-31T23:00:00+09:00", []string{"2027-01-01", "2027-02-01"}},
	}
	for _, c := range cases {
		after, err := time.Parse(time.RFC3339, c.from)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range c.want {
			run := nextMonthly(c.day, after)
			local := run.In(kst)
			if got := local.Format("2006-01-02"); got != want || local.Hour() != autoPayHour || local.Minute() != 0 {
				t.Fatalf("day %d after %s: ran %s, want %s at %02d:00 KST", c.day, after.In(kst), local, want, autoPayHour)
			}
			after = run
		}
	}
}

// TestUntilEndsAnOrder checks that no run is planned past until.
func TestUntilEndsAnOrder(t *testing.T) {
	until := time.Date(2027, 3, 31, 23, 59, 59, 0, kst)
	s := &Schedule{DayOfMonth: 31, Until: &until}
	mar := nextMonthly(31, time.Date(2027, 3, 1, 0, 0, 0, 0, kst))
	if next := s.following(nextMonthly(31, time.Date(2027, 2, 1, 0, 0, 0, 0, kst))); next == nil || !next.Equal(mar) {
		t.Fatalf("the March run is within until, got %v", next)
	}
	if next := s.following(mar); next != nil {
		t.Fatalf("a run after until was planned: %v", next)
	}
	if next := (&Schedule{}).following(mar); next != nil {
		t.Fatalf("a one-off order planned another run: %v", next)
	}
}

// TestReminderTime checks the due day's reminder window, and that a
// policy set after the reminder's time does not post one by itself.
func TestReminderTime(t *testing.T) {
	at := time.Date(2026, 12, 10, 9, 0, 0, 0, kst)
	p := &DuesPolicy{Period: "monthly", DueDay: 10, CreatedAt: at.AddDate(0, -1, 0)}
	for _, c := range []struct {
		now  time.Time
		want bool
	}{
		{at.Add(-time.Minute), false},
		{at, true},
		{at.Add(23 * time.Hour), true},
		{at.Add(24 * time.Hour), false},
	} {
		if got := remindable(p, "2026-12", c.now); got != c.want {
			t.Errorf("at %s: remindable %v, want %v", c.now, got, c.want)
		}
	}
	late := &DuesPolicy{Period: "monthly", DueDay: 10, CreatedAt: at.Add(time.Hour)}
	if remindable(late, "2026-12", at.Add(2*time.Hour)) {
		t.Error("a policy set after nine on its due day reminded at once")
	}
}
