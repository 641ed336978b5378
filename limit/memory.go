package limit

import (
	"context"
	"sync"
	"time"
)

// sweepEvery is how often the memory limiter drops ended windows, so
// addresses seen once do not stay in memory for good.
const sweepEvery = time.Minute

// window is one counter in memory.
type window struct {
	n    int
	ends time.Time
}

// memoryLimiter counts in this process: the same semantics as Redis, for a
// node that runs alone.
type memoryLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	counts map[string]*window
	swept  time.Time
}

// NewMemory returns a limiter that counts in this process only; use it
// when one node serves everyone.
func NewMemory() Limiter {
	return &memoryLimiter{now: time.Now, counts: map[string]*window{}}
}

func memKey(name, subject string) string { return name + "\x00" + subject }

// live returns the counter's current window, or nil once it has ended.
func (l *memoryLimiter) live(key string, now time.Time) *window {
	w := l.counts[key]
	if w != nil && !now.Before(w.ends) {
		delete(l.counts, key)
		return nil
	}
	return w
}

func (l *memoryLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < sweepEvery {
		return
	}
	l.swept = now
	for k, w := range l.counts {
		if !now.Before(w.ends) {
			delete(l.counts, k)
		}
	}
}

func (l *memoryLimiter) Take(ctx context.Context, name, subject string, r Rule) (Use, error) {
	return l.count(name, subject, r, 1, false), nil
}

func (l *memoryLimiter) TakeN(ctx context.Context, name, subject string, r Rule, cost int) (Use, error) {
	return l.count(name, subject, r, cost, false), nil
}

func (l *memoryLimiter) Charge(ctx context.Context, name, subject string, r Rule, cost int) (Use, error) {
	return l.count(name, subject, r, cost, true), nil
}

// count adds cost events when they fit, or always when force is set.
func (l *memoryLimiter) count(name, subject string, r Rule, cost int, force bool) Use {
	if r.Off() {
		return Use{OK: true}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	key := memKey(name, subject)
	w := l.live(key, now)
	if w == nil {
		w = &window{ends: now.Add(r.Window)}
		l.counts[key] = w
	}
	u := Use{Count: w.n, Wait: w.ends.Sub(now)}
	fits := w.n+cost <= r.N
	if fits || force {
		w.n += cost
		u.OK, u.Count = fits, w.n
	}
	return u
}

func (l *memoryLimiter) Give(_ context.Context, name, subject string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.live(memKey(name, subject), l.now()); w != nil && w.n > 0 {
		w.n--
	}
	return nil
}

func (l *memoryLimiter) Reset(_ context.Context, name, subject string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.counts, memKey(name, subject))
	return nil
}
