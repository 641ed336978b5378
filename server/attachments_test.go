package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"moim/internal/apiclient"
	"time"
)

// attachmentMeta is an upload's answer and a message's attachment.
type attachmentMeta = apiclient.Attachment

// upload posts data as the multipart field "file", claiming clientType
// for it, and returns the status and the reply.
func (c *client) upload(room int64, name, clientType string, data []byte) (int, []byte) {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", clientType)
	part, err := mw.CreatePart(h)
	if err != nil {
		c.t.Fatal(err)
	}
	_, _ = part.Write(data)
	_ = mw.Close()
	req, err := http.NewRequest("POST", c.base+urlf("/api/rooms/%d/attachments", room), &body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// mustUpload uploads and decodes a 201.
func (c *client) mustUpload(room int64, name, clientType string, data []byte) attachmentMeta {
	c.t.Helper()
	status, raw := c.upload(room, name, clientType, data)
	if status != 201 {
		c.t.Fatalf("upload %s: %d %s", name, status, raw)
	}
	var m attachmentMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

// uploadFails asserts an upload is refused with status and code in the
// one error shape.
func (c *client) uploadFails(status int, code string, room int64, name string, data []byte) {
	c.t.Helper()
	got, raw := c.upload(room, name, "application/octet-stream", data)
	var e apiError
	if json.Unmarshal(raw, &e) != nil || got != status || e.Error.Code != code || e.Error.Message == "" {
		c.t.Fatalf("upload %s (%d bytes): %d %.200s, want %d %q in the error shape", name, len(data), got, raw, status, code)
	}
}

// fetch GETs path and returns the response with its body read.
func (c *client) fetch(path string) (*http.Response, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// gpsMarker is a latitude of 37;33;59.77 (Seoul City Hall) as EXIF
// rationals: bytes no re-encoded image would hold by chance.
var gpsMarker = []byte{37, 0, 0, 0, 1, 0, 0, 0, 33, 0, 0, 0, 1, 0, 0, 0, 0x59, 0x17, 0, 0, 100, 0, 0, 0}

// exifJPEG is a w×h JPEG as a phone writes it: an APP1 EXIF block right
// after SOI with orientation 6 (turned 90° clockwise) and a GPS IFD
// holding the photo's latitude.
func exifJPEG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255})
		}
	}
	var plain bytes.Buffer
	if err := jpeg.Encode(&plain, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	tiff := []byte("II*\x00")
	tiff = le.AppendUint32(tiff, 8)
	// IFD0 at 8: orientation, GPS IFD pointer; next IFD none.
	ifd0 := le.AppendUint16(nil, 2)
	ifd0 = append(le.AppendUint16(le.AppendUint16(ifd0, 0x0112), 3), 1, 0, 0, 0, 6, 0, 0, 0)
	gpsAt := uint32(8 + 2 + 2*12 + 4)
	ifd0 = le.AppendUint32(le.AppendUint32(le.AppendUint16(le.AppendUint16(ifd0, 0x8825), 4), 1), gpsAt)
	ifd0 = le.AppendUint32(ifd0, 0)
	tiff = append(tiff, ifd0...)
	// GPS IFD: latitude ref "N", latitude (3 rationals after the IFD).
	latAt := gpsAt + 2 + 2*12 + 4
	gps := le.AppendUint16(nil, 2)
	gps = append(le.AppendUint32(le.AppendUint16(le.AppendUint16(gps, 0x0001), 2), 2), 'N', 0, 0, 0)
	gps = le.AppendUint32(le.AppendUint32(le.AppendUint16(le.AppendUint16(gps, 0x0002), 5), 3), latAt)
	gps = le.AppendUint32(gps, 0)
	tiff = append(append(tiff, gps...), gpsMarker...)
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := append([]byte{0xFF, 0xE1}, byte((len(app1)+2)>>8), byte(len(app1)+2))
	raw := plain.Bytes()
	out := append(append(append([]byte{}, raw[:2]...), seg...), append(app1, raw[2:]...)...)
	if !bytes.Contains(out, gpsMarker) {
		t.Fatal("test JPEG lacks its GPS block")
	}
	return out
}

func pngOf(t *testing.T, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var _ = alsoOn(onMemory, TestAttachmentsUploadSniffStripAndServeToMembers)

func TestAttachmentsUploadSniffStripAndServeToMembers(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})

	// A phone photo: the client says text/plain, the bytes say JPEG; EXIF
	// orientation is applied (40×20 stands up as 20×40) and the GPS block
	// is gone from what anyone downloads.
	photo := alice.mustUpload(room.ID, "../../영수증.jpeg", "text/plain", exifJPEG(t, 40, 20))
	if photo.Kind != "image" || photo.Type != "image/jpeg" || photo.Width != 20 || photo.Height != 40 || photo.Name != "영수증.jpeg" || !photo.Thumbnail || len(photo.ID) != 32 {
		t.Fatalf("photo upload answered %+v", photo)
	}
	resp, body := bob.fetch("/api/attachments/" + photo.ID)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") || !strings.Contains(resp.Header.Get("Cache-Control"), "private") ||
		int64(len(body)) != photo.Size {
		t.Fatalf("photo download: %d %v, %d bytes (upload said %d)", resp.StatusCode, resp.Header, len(body), photo.Size)
	}
	if bytes.Contains(body, gpsMarker) || bytes.Contains(body, []byte("Exif\x00\x00")) || bytes.Contains(body, []byte{0xFF, 0xE1}) {
		t.Fatal("the downloaded photo still holds EXIF (GPS) metadata")
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(body)); err != nil || cfg.Width != 20 || cfg.Height != 40 {
		t.Fatalf("downloaded photo decodes as %+v, %v; want 20×40", cfg, err)
	}
	resp, thumb := bob.fetch("/api/attachments/" + photo.ID + "/thumbnail")
	if _, err := jpeg.Decode(bytes.NewReader(thumb)); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || err != nil {
		t.Fatalf("thumbnail: %d %q, decode %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	// The same bytes under an id forever: a revalidation costs nothing.
	req, _ := http.NewRequest("GET", n.url+"/api/attachments/"+photo.ID, nil)
	req.Header.Set("Authorization", "Bearer "+bob.token)
	req.Header.Set("If-None-Match", `"`+photo.ID+`"`)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 304 {
		t.Fatalf("revalidation: %v %v, want 304", r, err)
	} else {
		r.Body.Close()
	}

	// Only members read it; unknown ids are 404.
	carol.fails(403, "not_member", "GET", "/api/attachments/"+photo.ID, nil)
	carol.fails(403, "not_member", "GET", "/api/attachments/"+photo.ID+"/thumbnail", nil)
	bob.fails(404, "not_found", "GET", "/api/attachments/0123456789abcdef0123456789abcdef", nil)
	bob.fails(404, "not_found", "GET", "/api/attachments/..%2f..%2fjwt-secret", nil)
	n.anon(t).fails(401, "unauthorized", "GET", "/api/attachments/"+photo.ID, nil)
	carol.uploadFails(403, "not_member", room.ID, "x.txt", []byte("hello"))

	// A page claiming to be a photo is a plain download, never a page of
	// this origin.
	page := alice.mustUpload(room.ID, "photo.jpg", "image/jpeg", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"))
	if page.Kind != "file" || page.Type != "application/octet-stream" || page.Thumbnail {
		t.Fatalf("an HTML upload answered %+v", page)
	}
	resp, _ = bob.fetch("/api/attachments/" + page.ID)
	if resp.Header.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("HTML download headers: %v", resp.Header)
	}
	bob.fails(404, "not_found", "GET", "/api/attachments/"+page.ID+"/thumbnail", nil)
	// A PNG named .txt is a PNG, and its name says so.
	if p := alice.mustUpload(room.ID, "notes.txt", "text/plain", pngOf(t, 8, 6)); p.Kind != "image" || p.Type != "image/png" || p.Name != "notes.png" || p.Width != 8 {
		t.Fatalf("a PNG named .txt answered %+v", p)
	}
	// A PDF stays a PDF, served for download.
	pdf := alice.mustUpload(room.ID, "회비 내역.pdf", "application/pdf", []byte("%PDF-1.4\n1 0 obj<<>>endobj\n"))
	resp, _ = bob.fetch("/api/attachments/" + pdf.ID)
	if pdf.Kind != "file" || resp.Header.Get("Content-Type") != "application/pdf" || !strings.Contains(resp.Header.Get("Content-Disposition"), "filename*=utf-8''") {
		t.Fatalf("PDF: %+v served as %v", pdf, resp.Header)
	}

	// 10 MB is the limit: one byte more is 413, and so is a body past
	// the server's own limit, both in the one error shape.
	alice.uploadFails(413, "too_large", room.ID, "big.bin", make([]byte, 10<<20+1))
	// Past the server's limit the node answers from the headers alone.
	tooLarge := func(what, path, ctype string, length int) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, alice.token, ctype, length)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"code":"`) {
			t.Fatalf("%s: %d %s, want 413 in the error shape", what, resp.StatusCode, body)
		}
	}
	tooLarge("a 12 MB upload", fmt.Sprintf("/api/rooms/%d/attachments", room.ID), "multipart/form-data; boundary=b", 12<<20)
	exact := make([]byte, 10<<20)
	_, _ = rand.Read(exact)
	if m := alice.mustUpload(room.ID, "exact.bin", "application/octet-stream", exact); m.Size != 10<<20 || m.Kind != "file" {
		t.Fatalf("a 10 MB file answered %+v", m)
	}
	// Raising the limit for uploads kept JSON routes at 64 KB.
	tooLarge("a 70 KB JSON body", "/api/rooms", "application/json", 70<<10)
}

func TestAttachmentQuotaPerRoom(t *testing.T) {
	cfg := testConfig(t)
	cfg.AttachmentQuota = 1 // MB
	n := startTestNode(t, cfg)
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})
	other := alice.createRoom(map[string]any{"name": "Other"})
	chunk := make([]byte, 600<<10)
	alice.mustUpload(room.ID, "a.bin", "application/octet-stream", chunk)
	alice.uploadFails(413, "quota_exceeded", room.ID, "b.bin", chunk)
	// The quota is the room's, not the user's.
	alice.mustUpload(other.ID, "b.bin", "application/octet-stream", chunk)
}

var _ = alsoOn(onMemory, TestMessagesCarryAttachments)

func TestMessagesCarryAttachments(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	other := alice.createRoom(map[string]any{"name": "Other", "member_ids": []int64{bob.id}})
	photo := alice.mustUpload(room.ID, "receipt.png", "image/png", pngOf(t, 30, 10))
	wa, wb := n.connect(alice), n.connect(bob)

	// A photo needs no caption.
	wa.send(map[string]any{"type": "send", "room": room.ID, "cid": "p1", "body": "", "attachment": photo.ID})
	ack := wa.await("ack")
	live := wb.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.CID == "p1" })
	if live.Attachment == nil || live.Attachment.ID != photo.ID || live.Attachment.Kind != "image" || live.Attachment.Width != 30 || live.Attachment.Name != "receipt.png" {
		t.Fatalf("live message attachment %+v", live.Attachment)
	}
	var rest struct{ Seq int64 }
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "p2", "body": "영수증", "attachment": photo.ID}, &rest)

	// Only the uploader attaches an upload, only in its room; a missing
	// caption needs an attachment.
	wb.send(map[string]any{"type": "send", "room": room.ID, "cid": "b1", "body": "mine now", "attachment": photo.ID})
	if f := wb.awaitWhere(func(f frameMsg) bool { return f.Type == "error" && f.CID == "b1" }); f.Code != "validation" {
		t.Fatalf("Bob attaching Alice's upload: %+v", f)
	}
	alice.fails(400, "validation", "POST", urlf("/api/rooms/%d/messages", other.ID), map[string]any{"cid": "x1", "body": "elsewhere", "attachment": photo.ID})
	alice.fails(400, "validation", "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "x2", "body": "", "attachment": "../../etc/passwd"})
	alice.fails(400, "validation", "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "x3", "body": ""})

	// History and sync return it.
	var h struct{ Messages []frameMsg }
	bob.must(200, "GET", urlf("/api/rooms/%d/messages?after=0", room.ID), nil, &h)
	got := map[int64]*attachmentMeta{}
	for _, m := range h.Messages {
		got[m.Seq] = m.Attachment
	}
	if got[ack.Seq] == nil || got[ack.Seq].ID != photo.ID || got[rest.Seq] == nil || got[rest.Seq].Type != "image/png" {
		t.Fatalf("history attachments %v, want %s on %d and %d", got, photo.ID, ack.Seq, rest.Seq)
	}
	wb.send(map[string]any{"type": "sync", "rooms": map[string]int64{urlf("%d", room.ID): ack.Seq - 1}})
	if f := wb.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Seq == ack.Seq }); f.Attachment == nil || f.Attachment.ID != photo.ID {
		t.Fatalf("synced message attachment %+v", f.Attachment)
	}

	// A deleted message no longer offers its file.
	wa.send(map[string]any{"type": "delete", "room": room.ID, "seq": rest.Seq})
	wb.awaitWhere(func(f frameMsg) bool { return f.Type == "deleted" && f.Seq == rest.Seq })
	var after struct{ Messages []frameMsg }
	bob.must(200, "GET", urlf("/api/rooms/%d/messages?after=%d", room.ID, rest.Seq-1), nil, &after)
	if len(after.Messages) == 0 || !after.Messages[0].Deleted || after.Messages[0].Attachment != nil {
		t.Fatalf("deleted message %+v still carries its attachment", after.Messages)
	}
}

// TestAttachmentReachesTheOtherNode: a photo sent on one node arrives on
// another with its metadata, and that node serves the bytes (GridFS is
// shared; with no MongoDB each node has its own data directory, so only
// the metadata is checked there).
func TestAttachmentReachesTheOtherNode(t *testing.T) {
	nodes := startCluster(t, 2)
	alice, bob := nodes[0].user(t, "Alice"), nodes[0].user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	photo := alice.mustUpload(room.ID, "receipt.jpg", "image/jpeg", exifJPEG(t, 16, 16))
	wb := nodes[1].connect(bob)
	wa := nodes[0].connect(alice)
	wa.send(map[string]any{"type": "send", "room": room.ID, "cid": "n1", "body": "영수증입니다", "attachment": photo.ID})
	wa.await("ack")
	f := wb.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.CID == "n1" })
	if f.Attachment == nil || *f.Attachment != (attachmentMeta{ID: photo.ID, Name: photo.Name, Type: photo.Type, Size: photo.Size, Kind: "image", Width: 16, Height: 16}) {
		t.Fatalf("on node 1 the message carries %+v, want %+v", f.Attachment, photo)
	}
	if nodes[1].backends.mongo == nil {
		return
	}
	remote := *bob
	remote.base = nodes[1].url
	resp, body := remote.fetch("/api/attachments/" + photo.ID)
	if resp.StatusCode != 200 || int64(len(body)) != photo.Size {
		t.Fatalf("node 1 serves %d, %d bytes; want 200, %d", resp.StatusCode, len(body), photo.Size)
	}
}

var _ = alsoOn(onMemory, TestSpendNamesItsReceipt)

func TestSpendNamesItsReceipt(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	owner, member, outsider := n.user(t, "총무"), n.user(t, "Member"), n.user(t, "Outsider")
	room := owner.createRoom(map[string]any{"name": "Tennis", "member_ids": []int64{member.id}})
	elsewhere := outsider.createRoom(map[string]any{"name": "Elsewhere"})
	rp := urlf("/api/rooms/%d", room.ID)
	owner.must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	member.must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d1"}, nil)
	member.must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "period": "2026-11", "idempotency_key": "p1"}, nil)
	// The member who kept the paper photographs it; the treasurer spends.
	receipt := member.mustUpload(room.ID, "court.jpg", "image/jpeg", exifJPEG(t, 24, 24))
	foreign := outsider.mustUpload(elsewhere.ID, "other.jpg", "image/jpeg", exifJPEG(t, 8, 8))
	wm := n.connect(member)

	owner.fails(400, "validation", "POST", rp+"/fund/spend", map[string]any{"amount": 1000, "memo": "x", "receipt_attachment_id": foreign.ID, "idempotency_key": "s0"})
	var spent struct {
		ReceiptAttachmentID string `json:"receipt_attachment_id"`
	}
	owner.must(201, "POST", rp+"/fund/spend", map[string]any{"amount": 12000, "memo": "코트 대여", "receipt_attachment_id": receipt.ID, "idempotency_key": "s1"}, &spent)
	if spent.ReceiptAttachmentID != receipt.ID {
		t.Fatalf("spend answered receipt %q, want %q", spent.ReceiptAttachmentID, receipt.ID)
	}
	// The same key with another receipt is another request.
	owner.fails(409, "idempotency_conflict", "POST", rp+"/fund/spend", map[string]any{"amount": 12000, "memo": "코트 대여", "idempotency_key": "s1"})

	// The fee card in the chat carries the receipt's metadata.
	f := wm.awaitWhere(func(f frameMsg) bool { return f.Type == "msg" && f.Kind == "fee" && strings.Contains(f.Body, "지출") })
	var card struct {
		Receipt *attachmentMeta `json:"receipt"`
	}
	if err := json.Unmarshal(f.Fee, &card); err != nil || card.Receipt == nil || card.Receipt.ID != receipt.ID || card.Receipt.Kind != "image" {
		t.Fatalf("spend announcement %d carries receipt %+v (%s)", f.Seq, card.Receipt, f.Fee)
	}

	// The ledger line and the CSV name it.
	var ledger struct {
		Entries []struct {
			Kind      string `json:"kind"`
			ReceiptID string `json:"receipt_attachment_id"`
		} `json:"entries"`
	}
	member.must(200, "GET", rp+"/fund/ledger", nil, &ledger)
	if len(ledger.Entries) == 0 || ledger.Entries[0].Kind != "spend" || ledger.Entries[0].ReceiptID != receipt.ID {
		t.Fatalf("ledger %+v, want the spend first with receipt %s", ledger.Entries, receipt.ID)
	}
	status, csv := member.raw("GET", rp+"/fund/ledger?format=csv", nil)
	if status != 200 || !strings.Contains(string(csv), ",receipt\n") || !strings.Contains(string(csv), "/api/attachments/"+receipt.ID) {
		t.Fatalf("ledger CSV %d: %s", status, csv)
	}
}

var _ = alsoOn(onMemory, TestAttachmentDelete)

// TestAttachmentDelete: the uploader or a room admin deletes an upload;
// its bytes are gone (410 for the file and its thumbnail), the message
// carrying it still names it, it can no longer be attached, and its bytes
// no longer count against the room's quota. Runs on GridFS (the Redis
// path) and on the data directory (the single node).
func TestAttachmentDelete(t *testing.T) {
	cfg := testConfig(t)
	cfg.AttachmentQuota = 1 // MB
	n := startTestNode(t, cfg)
	alice, bob, carol := n.user(t, "Alice"), n.user(t, "Bob"), n.user(t, "Carol")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id, carol.id}})
	photo := bob.mustUpload(room.ID, "산행.png", "image/png", pngOf(t, 300, 200))
	var sent struct{ Seq int64 }
	bob.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "p1", "body": "사진", "attachment": photo.ID}, &sent)

	// Another plain member may not; a stranger learns nothing.
	carol.fails(403, "forbidden", "DELETE", "/api/attachments/"+photo.ID, nil)
	n.user(t, "Eve").fails(403, "not_member", "DELETE", "/api/attachments/"+photo.ID, nil)
	bob.fails(404, "not_found", "DELETE", "/api/attachments/"+strings.Repeat("0", 32), nil)

	wc := n.connect(carol)
	bob.must(204, "DELETE", "/api/attachments/"+photo.ID, nil, nil)
	// Members' live connections hear of it at once.
	if ev := wc.await("attachment_deleted"); ev.Room != room.ID || ev.Attachment == nil || ev.Attachment.ID != photo.ID {
		t.Fatalf("attachment_deleted event %+v", ev)
	}
	for _, p := range []string{"/api/attachments/" + photo.ID, "/api/attachments/" + photo.ID + "/thumbnail"} {
		resp, raw := carol.fetch(p)
		var e apiError
		if resp.StatusCode != 410 || json.Unmarshal(raw, &e) != nil || e.Error.Code != "gone" {
			t.Fatalf("GET %s after delete: %d %.200s, want 410 gone", p, resp.StatusCode, raw)
		}
	}
	bob.fails(410, "gone", "DELETE", "/api/attachments/"+photo.ID, nil)
	var h struct{ Messages []frameMsg }
	carol.must(200, "GET", urlf("/api/rooms/%d/messages?after=%d", room.ID, sent.Seq-1), nil, &h)
	if len(h.Messages) == 0 || h.Messages[0].Attachment == nil || h.Messages[0].Attachment.ID != photo.ID {
		t.Fatalf("the message lost its attachment's metadata: %+v", h.Messages)
	}
	bob.fails(400, "validation", "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "p2", "body": "again", "attachment": photo.ID})

	// An admin deletes a member's upload, and the room's quota is free again.
	chunk := make([]byte, 600<<10)
	big := carol.mustUpload(room.ID, "a.bin", "application/octet-stream", chunk)
	carol.uploadFails(413, "quota_exceeded", room.ID, "b.bin", chunk)
	alice.must(204, "DELETE", "/api/attachments/"+big.ID, nil, nil)
	carol.mustUpload(room.ID, "b.bin", "application/octet-stream", chunk)
}
