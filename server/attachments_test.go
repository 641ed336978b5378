package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"moim/internal/apiclient"
	"moim/internal/testkit"
)

// attachmentMeta is an upload's answer and a message's attachment.
type attachmentMeta = apiclient.Attachment

// upload posts data as the multipart field "file", claiming clientType
// for it, and returns the status and the reply.
func (c *client) upload(room int64, name, clientType string, data []byte) (int, []byte) {
	c.t.Helper()
	return c.kit().Upload(room, name, clientType, data)
}

// mustUpload uploads and decodes a 201.
func (c *client) mustUpload(room int64, name, clientType string, data []byte) attachmentMeta {
	c.t.Helper()
	return c.kit().MustUpload(room, name, clientType, data)
}

// uploadFails asserts an upload is refused with status and code in the
// one error shape.
func (c *client) uploadFails(status int, code string, room int64, name string, data []byte) {
	c.t.Helper()
	c.kit().UploadFails(status, code, room, name, data)
}

// fetch GETs path and returns the response with its body read.
func (c *client) fetch(path string) (*http.Response, []byte) {
	c.t.Helper()
	return c.kit().Fetch(path)
}

var _ = alsoOn(onMemory, TestUploadBodyLimits)

// TestUploadBodyLimits checks the node's body limits: uploads get a
// little over attachments.MaxSize, every other route keeps 64 KB, and a
// body past either is refused from the headers alone.
func TestUploadBodyLimits(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice := n.user(t, "Alice")
	room := alice.createRoom(map[string]any{"name": "Club"})

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

var _ = alsoOn(onMemory, TestMessagesCarryAttachments)

func TestMessagesCarryAttachments(t *testing.T) {
	n := startTestNode(t, testConfig(t))
	alice, bob := n.user(t, "Alice"), n.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Club", "member_ids": []int64{bob.id}})
	other := alice.createRoom(map[string]any{"name": "Other", "member_ids": []int64{bob.id}})
	photo := alice.mustUpload(room.ID, "receipt.png", "image/png", testkit.PNG(t, 30, 10))
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
	photo := alice.mustUpload(room.ID, "receipt.jpg", "image/jpeg", testkit.PhoneJPEG(t, 16, 16))
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
	receipt := member.mustUpload(room.ID, "court.jpg", "image/jpeg", testkit.PhoneJPEG(t, 24, 24))
	foreign := outsider.mustUpload(elsewhere.ID, "other.jpg", "image/jpeg", testkit.PhoneJPEG(t, 8, 8))
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
	photo := bob.mustUpload(room.ID, "산행.png", "image/png", testkit.PNG(t, 300, 200))
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
