package accounts_test

import (
	"strings"
	"testing"
	"time"

	"moim/accounts"
	"moim/internal/testkit"
	"moim/limit"
)

type foundUser struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Contact     bool   `json:"contact"`
}

// TestUserSearchByUsernamePrefix: people are found by the start of their
// username (3 characters at least), with display names and whether they
// are contacts already; searches are limited per user.
func TestUserSearchByUsernamePrefix(t *testing.T) {
	base := serveLimited(t, redisLimiter(t), accounts.Limits{SearchPerUser: limit.Rule{N: 5, Window: time.Minute}})
	alice, bob := testkit.Signup(t, base, "Alice"), testkit.Signup(t, base, "밥")
	alice.Must(201, "POST", "/api/contacts", map[string]any{"username": bob.Username}, nil)

	var res struct{ Users []foundUser }
	alice.Must(200, "GET", "/api/users/search?q="+strings.ToUpper(bob.Username[:8]), nil, &res)
	if len(res.Users) != 1 || res.Users[0].ID != bob.ID || res.Users[0].DisplayName != "밥" || !res.Users[0].Contact {
		t.Fatalf("search for bob's prefix: %+v", res.Users)
	}
	bob.Must(200, "GET", "/api/users/search?q="+alice.Username, nil, &res)
	if len(res.Users) != 1 || res.Users[0].ID != alice.ID || res.Users[0].Contact {
		t.Fatalf("bob's search for alice: %+v", res.Users)
	}
	// Searchers never find themselves; "u_%" is literal, not a wildcard.
	bob.Must(200, "GET", "/api/users/search?q="+bob.Username, nil, &res)
	if len(res.Users) != 0 {
		t.Fatalf("search for oneself: %+v", res.Users)
	}
	bob.Fails(400, "validation", "GET", "/api/users/search?q=u_", nil)
	bob.Fails(400, "validation", "GET", "/api/users/search?q=u_%25", nil)
	for range 4 {
		alice.Must(200, "GET", "/api/users/search?q=u_a", nil, nil)
	}
	alice.Fails(429, "rate_limited", "GET", "/api/users/search?q=u_a", nil)
}

// TestContactsShowMutual: a contact says whether they have me too.
func TestContactsShowMutual(t *testing.T) {
	base := serve(t)
	alice, bob := testkit.Signup(t, base, "Alice"), testkit.Signup(t, base, "Bob")
	mutual := func() map[int64]bool {
		var l struct {
			Contacts []struct {
				ID     int64 `json:"id"`
				Mutual bool  `json:"mutual"`
			} `json:"contacts"`
		}
		alice.Must(200, "GET", "/api/contacts", nil, &l)
		out := map[int64]bool{}
		for _, c := range l.Contacts {
			out[c.ID] = c.Mutual
		}
		return out
	}
	alice.Must(201, "POST", "/api/contacts", map[string]any{"username": bob.Username}, nil)
	if m, ok := mutual()[bob.ID]; !ok || m {
		t.Fatalf("one-way contact listed as %v (present %v)", m, ok)
	}
	bob.Must(201, "POST", "/api/contacts", map[string]any{"username": alice.Username}, nil)
	if !mutual()[bob.ID] {
		t.Fatal("contact who has alice too not listed as mutual")
	}
}
