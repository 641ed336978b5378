package main

import "testing"

// TestWebMoneyInChromium runs web/e2e/money.mjs: an owner hands her room
// over to a member from the dues panel in Debian's Chromium; he gets the
// owner's controls, she keeps an admin's.
func TestWebMoneyInChromium(t *testing.T) {
	runBrowserFlow(t, "money.mjs", testConfig(t), "owner-handover.png")
}
