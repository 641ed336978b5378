package main

import "testing"

// TestWebPhotos runs web/e2e/photos.mjs: attaching a photo (with its
// preview) and a file in the composer, the thumbnail opening full size by
// keyboard, the download chip, the uploader deleting the photo (another
// member sees it gone live), and a spend's receipt in the ledger and the
// fee card (the spend pressed while another member's payment reloads the
// panel still counts), on a desktop and a phone.
func TestWebPhotos(t *testing.T) {
	runBrowserFlow(t, "photos.mjs", testConfig(t), "photos-preview-desktop.png", "photos-full-phone.png",
		"photos-chat-phone.png", "photos-deleted-phone.png", "photos-receipt-desktop.png", "photos-fee-card-phone.png")
}
