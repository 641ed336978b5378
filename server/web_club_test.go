package main

import "testing"

// TestWebClubInChromium runs web/e2e/club.mjs: the club features of
// issue 20 in the web client, on a desktop and a phone: user search,
// invitations accepted live (an Accept pressed as another invitation
// arrives still counts), invite links (made, copied, listed, joined,
// revoked), system lines in each reader's language, the notice banner,
// editing, the mention highlight and badge, and the member-invite setting.
func TestWebClubInChromium(t *testing.T) {
	runBrowserFlow(t, "club.mjs", testConfig(t), "club-invitation-desktop.png", "club-invite-desktop.png",
		"club-list-phone.png", "club-chat-phone.png", "club-chat-desktop.png")
}
