package main

import (
	"testing"
	"time"

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
	cfg := testConfig(t)
	cfg.UserSearchLimit = limit.Rule{N: 5, Window: time.Minute}
	n := startTestNode(t, cfg)
	alice, bob := n.user(t, "Alice"), n.user(t, "밥")
	alice.must(201, "POST", "/api/contacts", map[string]any{"username": bob.username}, nil)

	var res struct{ Users []foundUser }
	alice.must(200, "GET", "/api/users/search?q="+upper(bob.username[:8]), nil, &res)
	if len(res.Users) != 1 || res.Users[0].ID != bob.id || res.Users[0].DisplayName != "밥" || !res.Users[0].Contact {
		t.Fatalf("search for bob's prefix: %+v", res.Users)
	}
	bob.must(200, "GET", "/api/users/search?q="+alice.username, nil, &res)
	if len(res.Users) != 1 || res.Users[0].ID != alice.id || res.Users[0].Contact {
		t.Fatalf("bob's search for alice: %+v", res.Users)
	}
	// Searchers never find themselves; "u_%" is literal, not a wildcard.
	bob.must(200, "GET", "/api/users/search?q="+bob.username, nil, &res)
	if len(res.Users) != 0 {
		t.Fatalf("search for oneself: %+v", res.Users)
	}
	bob.fails(400, "validation", "GET", "/api/users/search?q=u_", nil)
	bob.fails(400, "validation", "GET", "/api/users/search?q=u_%25", nil)
	for range 4 {
		alice.must(200, "GET", "/api/users/search?q=u_a", nil, nil)
	}
	alice.fails(429, "rate_limited", "GET", "/api/users/search?q=u_a", nil)
}

// TestContactsShowMutual: a contact says whether they have me too.
func TestContactsShowMutual(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	mutual := func() map[int64]bool {
		var l struct {
			Contacts []struct {
				ID     int64 `json:"id"`
				Mutual bool  `json:"mutual"`
			} `json:"contacts"`
		}
		alice.must(200, "GET", "/api/contacts", nil, &l)
		out := map[int64]bool{}
		for _, c := range l.Contacts {
			out[c.ID] = c.Mutual
		}
		return out
	}
	alice.must(201, "POST", "/api/contacts", map[string]any{"username": bob.username}, nil)
	if m, ok := mutual()[bob.id]; !ok || m {
		t.Fatalf("one-way contact listed as %v (present %v)", m, ok)
	}
	bob.must(201, "POST", "/api/contacts", map[string]any{"username": alice.username}, nil)
	if !mutual()[bob.id] {
		t.Fatal("contact who has alice too not listed as mutual")
	}
}
