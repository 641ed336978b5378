package accounts_test

import (
	"strconv"
	"testing"
	"time"

	"moim/accounts"
	"moim/internal/testkit"
	"moim/limit"
)

// redisLimiter counts in the Redis named by MOIM_TEST_REDIS_URL, under a
// prefix of the test's own, as nodes sharing Redis do.
func redisLimiter(t *testing.T) limit.Limiter {
	t.Helper()
	return limit.NewRedis(testkit.Redis(t))
}

func TestLoginAndSignupLimits(t *testing.T) {
	base := serveLimited(t, redisLimiter(t), accounts.Limits{
		LoginPerUser:     limit.Rule{N: 3, Window: 2 * time.Second},
		LoginPerAddress:  limit.Rule{N: 5, Window: time.Minute},
		SignupPerAddress: limit.Rule{N: 4, Window: time.Minute},
	})
	c := testkit.Anon(t, base)
	for _, u := range []string{"target", "bystander", "third"} {
		c.Must(201, "POST", "/api/auth/signup", map[string]any{"username": u, "password": "password1", "display_name": u}, nil)
	}
	for i := range 3 {
		c.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "guess" + strconv.Itoa(i) + "xxxx"})
	}
	// The username is locked, even for the right password, until its window ends.
	c.Fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"})
	if s := testkit.Anon(t, base).RetryAfter("POST", "/api/auth/login", `{"username":"target","password":"password1"}`); s > 2 {
		t.Fatalf("Retry-After %d s for a 2 s window", s)
	}
	// Other users are not affected, and a success clears nothing of theirs.
	c.Must(200, "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"}, nil)
	time.Sleep(2100 * time.Millisecond)
	c.Must(200, "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"}, nil)

	// Guessing many usernames from one address: 5 failures per address.
	c.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "third", "password": "nope-nope"})
	c.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "ghost", "password": "nope-nope"})
	c.Fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"})
	// Someone elsewhere still logs in.
	testkit.Anon(t, base).From("127.0.0.2").Must(200, "POST", "/api/auth/login", map[string]any{"username": "bystander", "password": "password1"}, nil)

	// Sign-ups per address: the fourth is allowed, the fifth refused.
	c.Must(201, "POST", "/api/auth/signup", map[string]any{"username": "fourth", "password": "password1", "display_name": "4"}, nil)
	c.Fails(429, "rate_limited", "POST", "/api/auth/signup", map[string]any{"username": "fifth", "password": "password1", "display_name": "5"})
	testkit.Anon(t, base).RetryAfter("POST", "/api/auth/signup", `{"username":"sixth","password":"password1","display_name":"6"}`)
	testkit.Anon(t, base).From("127.0.0.3").Must(201, "POST", "/api/auth/signup", map[string]any{"username": "fifth", "password": "password1", "display_name": "5"}, nil)
}

// TestParallelWrongLoginsStopAtTheLimit is issue 19's login race: 25 wrong
// logins at once against a limit of 10 were all checked but 9. Now exactly
// 10 are, and a stranger's failures do not lock the owner out.
func TestParallelWrongLoginsStopAtTheLimit(t *testing.T) {
	base := serveLimited(t, redisLimiter(t), accounts.Limits{
		LoginPerUser:    limit.Rule{N: 10, Window: time.Minute},
		LoginPerAddress: limit.Rule{N: 100, Window: time.Minute},
	})
	testkit.Anon(t, base).Must(201, "POST", "/api/auth/signup", map[string]any{"username": "target", "password": "password1", "display_name": "T"}, nil)

	attacker := testkit.Anon(t, base).From("127.0.0.2")
	got := attacker.Parallel(25, "POST", "/api/auth/login", map[string]any{"username": "target", "password": "wrong-guess"})
	if got[401] != 10 || got[429] != 15 {
		t.Fatalf("25 parallel wrong logins against a limit of 10: %v, want 10 × 401 and 15 × 429", got)
	}
	attacker.Fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"})

	// The owner, from an address that has not failed, still logs in.
	testkit.Anon(t, base).From("127.0.0.3").Must(200, "POST", "/api/auth/login", map[string]any{"username": "target", "password": "password1"}, nil)
	// Past the username's limit, another address gets one try, not more.
	for range 10 {
		testkit.Anon(t, base).From("127.0.0.2").Raw("POST", "/api/auth/login", map[string]any{"username": "target", "password": "wrong-again"})
	}
	third := testkit.Anon(t, base).From("127.0.0.4")
	third.Fails(401, "unauthorized", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "guess-one"})
	third.Fails(429, "rate_limited", "POST", "/api/auth/login", map[string]any{"username": "target", "password": "guess-two"})
}
