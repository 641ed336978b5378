package attachments_test

import (
	"bytes"
	"image/jpeg"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"moim/accounts"
	"moim/attachments"
	"moim/internal/testkit"
	"moim/teststack"
)

// serve starts the attachment routes beside the account and room routes
// on backend b, the bytes in a data directory of the test's own (GridFS
// has its contract test beside Disk in blobs_test.go); quota caps a room's
// bytes (0: none).
func serve(t *testing.T, b teststack.Backend, quota int64) *teststack.Stack {
	t.Helper()
	s := teststack.New(t, b)
	blobs, err := attachments.NewDisk(filepath.Join(t.TempDir(), "attachments"))
	if err != nil {
		t.Fatal(err)
	}
	files := attachments.New(s.DB, blobs, s.People(), quota)
	if err := files.Migrate(); err != nil {
		t.Fatal(err)
	}
	s.Serve(t, func(r fiber.Router, auth fiber.Handler) { files.Routes(r, auth, accounts.UserID) })
	return s
}

// TestUploadSniffStripAndServeToMembers checks what an upload becomes: the
// type its bytes say, EXIF applied and removed, a thumbnail for a photo,
// safe download headers, and only the room's members reading it.
func TestUploadSniffStripAndServeToMembers(t *testing.T) {
	teststack.OnEach(t, func(t *testing.T, b teststack.Backend) {
		n := serve(t, b, 0)
		alice, bob, carol := n.User(t, "Alice"), n.User(t, "Bob"), n.User(t, "Carol")
		room := n.CreateRoom(alice, map[string]any{"name": "Club", "member_ids": []int64{bob.ID}})

		// A phone photo: the client says text/plain, the bytes say JPEG; EXIF
		// orientation is applied (40×20 stands up as 20×40) and the GPS block
		// is gone from what anyone downloads.
		photo := alice.MustUpload(room.ID, "../../영수증.jpeg", "text/plain", testkit.PhoneJPEG(t, 40, 20))
		if photo.Kind != "image" || photo.Type != "image/jpeg" || photo.Width != 20 || photo.Height != 40 || photo.Name != "영수증.jpeg" || !photo.Thumbnail || len(photo.ID) != 32 {
			t.Fatalf("photo upload answered %+v", photo)
		}
		resp, body := bob.Fetch("/api/attachments/" + photo.ID)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") || !strings.Contains(resp.Header.Get("Cache-Control"), "private") ||
			int64(len(body)) != photo.Size {
			t.Fatalf("photo download: %d %v, %d bytes (upload said %d)", resp.StatusCode, resp.Header, len(body), photo.Size)
		}
		if bytes.Contains(body, testkit.GPSMarker) || bytes.Contains(body, []byte("Exif\x00\x00")) || bytes.Contains(body, []byte{0xFF, 0xE1}) {
			t.Fatal("the downloaded photo still holds EXIF (GPS) metadata")
		}
		if cfg, err := jpeg.DecodeConfig(bytes.NewReader(body)); err != nil || cfg.Width != 20 || cfg.Height != 40 {
			t.Fatalf("downloaded photo decodes as %+v, %v; want 20×40", cfg, err)
		}
		resp, thumb := bob.Fetch("/api/attachments/" + photo.ID + "/thumbnail")
		if _, err := jpeg.Decode(bytes.NewReader(thumb)); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || err != nil {
			t.Fatalf("thumbnail: %d %q, decode %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
		}
		// The same bytes under an id forever: a revalidation costs nothing.
		req, _ := http.NewRequest("GET", n.Base+"/api/attachments/"+photo.ID, nil)
		req.Header.Set("Authorization", "Bearer "+bob.Token)
		req.Header.Set("If-None-Match", `"`+photo.ID+`"`)
		if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 304 {
			t.Fatalf("revalidation: %v %v, want 304", r, err)
		} else {
			r.Body.Close()
		}

		// Only members read it; unknown ids are 404.
		carol.Fails(403, "not_member", "GET", "/api/attachments/"+photo.ID, nil)
		carol.Fails(403, "not_member", "GET", "/api/attachments/"+photo.ID+"/thumbnail", nil)
		bob.Fails(404, "not_found", "GET", "/api/attachments/0123456789abcdef0123456789abcdef", nil)
		bob.Fails(404, "not_found", "GET", "/api/attachments/..%2f..%2fjwt-secret", nil)
		testkit.Anon(t, n.Base).Fails(401, "unauthorized", "GET", "/api/attachments/"+photo.ID, nil)
		carol.UploadFails(403, "not_member", room.ID, "x.txt", []byte("hello"))

		// A page claiming to be a photo is a plain download, never a page of
		// this origin.
		page := alice.MustUpload(room.ID, "photo.jpg", "image/jpeg", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"))
		if page.Kind != "file" || page.Type != "application/octet-stream" || page.Thumbnail {
			t.Fatalf("an HTML upload answered %+v", page)
		}
		resp, _ = bob.Fetch("/api/attachments/" + page.ID)
		if resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("HTML download headers: %v", resp.Header)
		}
		bob.Fails(404, "not_found", "GET", "/api/attachments/"+page.ID+"/thumbnail", nil)
		// A PNG named .txt is a PNG, and its name says so.
		if p := alice.MustUpload(room.ID, "notes.txt", "text/plain", testkit.PNG(t, 8, 6)); p.Kind != "image" || p.Type != "image/png" || p.Name != "notes.png" || p.Width != 8 {
			t.Fatalf("a PNG named .txt answered %+v", p)
		}
		// A PDF stays a PDF, served for download.
		pdf := alice.MustUpload(room.ID, "회비 내역.pdf", "application/pdf", []byte("%PDF-1.4\n1 0 obj<<>>endobj\n"))
		resp, _ = bob.Fetch("/api/attachments/" + pdf.ID)
		if pdf.Kind != "file" || resp.Header.Get("Content-Type") != "application/pdf" || !strings.Contains(resp.Header.Get("Content-Disposition"), "filename*=utf-8''") {
			t.Fatalf("PDF: %+v served as %v", pdf, resp.Header)
		}
	})
}

// TestAttachmentQuotaPerRoom checks a room's quota (1 MB here) refuses an
// upload past it, counted per room, not per user.
func TestAttachmentQuotaPerRoom(t *testing.T) {
	n := serve(t, teststack.OnMariaDB, 1<<20)
	alice := n.User(t, "Alice")
	room := n.CreateRoom(alice, map[string]any{"name": "Club"})
	other := n.CreateRoom(alice, map[string]any{"name": "Other"})
	chunk := make([]byte, 600<<10)
	alice.MustUpload(room.ID, "a.bin", "application/octet-stream", chunk)
	alice.UploadFails(413, "quota_exceeded", room.ID, "b.bin", chunk)
	// The quota is the room's, not the user's.
	alice.MustUpload(other.ID, "b.bin", "application/octet-stream", chunk)
}
