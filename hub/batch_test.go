package hub

import (
	"testing"
	"time"
)

// A lingering batch takes what arrives until it is full, without waiting
// out its time.
func TestFillBatchEndsWhenFull(t *testing.T) {
	ch := make(chan int, 64)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	go func() {
		for i := 1; i < 40; i++ {
			time.Sleep(time.Millisecond)
			ch <- i
		}
	}()
	done := make(chan []int, 1)
	go func() { done <- fillBatch(ch, []int{0}, 32, time.Now().Add(time.Minute), timer) }()
	select {
	case got := <-done:
		if len(got) != 32 {
			t.Fatalf("batch of %d, want 32", len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("batch %v: item %d is %d", got, i, v)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a full batch still waited for its time")
	}
}

// A lingering batch that does not fill goes when its time is up, with
// what came meanwhile; a time already past adds nothing.
func TestFillBatchEndsAtItsTime(t *testing.T) {
	ch := make(chan int, 64)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ch <- 1
	start := time.Now()
	got := fillBatch(ch, []int{0}, 32, start.Add(50*time.Millisecond), timer)
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("returned after %v, before its time", waited)
	}
	if len(got) != 2 || got[1] != 1 {
		t.Errorf("batch %v, want [0 1]", got)
	}
	ch <- 2
	if got := fillBatch(ch, []int{0}, 32, time.Now().Add(-time.Millisecond), timer); len(got) != 1 {
		t.Errorf("a past time: batch %v, want [0]", got)
	}
	if got := <-ch; got != 2 {
		t.Errorf("left %d on the channel, want 2", got)
	}
	// The timer is stopped again: a later call arms it afresh.
	if got := fillBatch(ch, nil, 32, time.Now().Add(10*time.Millisecond), timer); len(got) != 0 {
		t.Errorf("batch %v, want none", got)
	}
}
