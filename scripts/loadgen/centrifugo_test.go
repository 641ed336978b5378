package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Centrifugo target's wire format, checked against frames as the
// server encodes them (github.com/centrifugal/protocol's JSON encoder:
// push, then channel, then pub with data, info and offset in that order;
// several replies to a WebSocket message, one per line).

func TestCentrifugoPublishAndToken(t *testing.T) {
	var cmd struct {
		ID      uint32 `json:"id"`
		Publish struct {
			Channel string `json:"channel"`
			Data    struct {
				Body string `json:"body"`
			} `json:"data"`
		} `json:"publish"`
	}
	body := appendBody(nil, 1718000000123456789, []byte("lg-1718000000123456789-2s"), []byte(strings.Repeat("x", 200)), 100)
	if len(body) != 100 {
		t.Errorf("body is %d bytes, want -body-size 100", len(body))
	}
	p := appendPublish(nil, 7, "lg_run_1_3", body)
	if err := json.Unmarshal(p, &cmd); err != nil {
		t.Fatalf("publish command %s: %v", p, err)
	}
	if cmd.ID != 7 || cmd.Publish.Channel != "lg_run_1_3" || cmd.Publish.Data.Body != string(body) {
		t.Errorf("publish command decodes as %+v", cmd)
	}

	tok := cfToken([]byte("secret"), "lg_00001", 1900000000)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not three parts", tok)
	}
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != parts[2] {
		t.Error("token signature is not HS256 of header.claims")
	}
	var header, claims map[string]any
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(h, &header) != nil || header["alg"] != "HS256" || json.Unmarshal(c, &claims) != nil ||
		claims["sub"] != "lg_00001" || claims["exp"] != float64(1900000000) {
		t.Errorf("token header %s claims %s", h, c)
	}
}

func TestCentrifugoPublicationsAreRecognised(t *testing.T) {
	push := []byte(`{"push":{"channel":"lg_run_1_3","pub":{"data":{"body":"lg 1718000000123456789 lg-1718000000123456789-2s xxxx"},"info":{"user":"lg_00004","client":"5c1f"},"offset":42}}}`)
	ch, off, sent, cid, ok := parsePub(push)
	if !ok || string(ch) != "lg_run_1_3" || off != 42 || sent != 1718000000123456789 || string(cid) != "lg-1718000000123456789-2s" {
		t.Errorf("parsePub: channel %q offset %d sent %d cid %q ok %v", ch, off, sent, cid, ok)
	}
	warm := []byte(`{"push":{"channel":"c","pub":{"data":{"body":"` + warmBody + `"},"offset":1}}}`)
	if _, off, sent, _, ok := parsePub(warm); !ok || off != 1 || sent != -1 {
		t.Errorf("warm-up publication: offset %d sent %d ok %v, want 1 -1 true", off, sent, ok)
	}
	// An escaped quote inside the body neither ends it nor fakes a key.
	quoted := []byte(`{"push":{"channel":"c","pub":{"data":{"body":"say \"offset\":9 \\"},"offset":3}}}`)
	if _, off, sent, _, ok := parsePub(quoted); !ok || off != 3 || sent != 0 {
		t.Errorf("another body: offset %d sent %d ok %v, want 3 0 true", off, sent, ok)
	}
	for _, other := range []string{
		`{"id":5,"publish":{}}`,
		`{"push":{"channel":"c","join":{"info":{"user":"u"}}}}`,
		`{"push":{"channel":"c","pub":{"data":{"body":"lg 1 x"}}}}`, // no offset: history off
	} {
		if _, _, _, _, ok := parsePub([]byte(other)); ok {
			t.Errorf("parsePub accepted %s", other)
		}
	}
}

// TestCentrifugoAccounting feeds one WebSocket message of several lines
// (a ping, a publish reply, the sender's own publication, a publication
// of another channel) to a client and checks what the stage counts.
func TestCentrifugoAccounting(t *testing.T) {
	lg := &loadgen{o: &options{roomSize: 2, target: "centrifugo", bodySize: 100}, runID: "run"}
	lg.tgt = newCentrifugoTarget(lg)
	accts, _ := lg.tgt.accounts(context.Background(), 2)
	st := newStage(context.Background(), lg, 1, stageSpec{2, 1}, accts, nil)
	if err := lg.tgt.createRooms(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	c := st.clients[0]
	server, conn := net.Pipe()
	defer server.Close()
	c.conn = conn
	pong := make(chan []byte, 1)
	go func() {
		_, _, p, err := readFrame(bufio.NewReader(server), new([]byte))
		if err == nil {
			pong <- p
		}
	}()
	c.cf.pong = true

	sent := time.Now().Add(-3 * time.Millisecond).UnixNano()
	cid := appendCID(nil, sent, 1)
	p := lg.tgt.appendSend(nil, c, cid, appendBody(nil, sent, cid, nil, 0))
	var cmd struct {
		ID uint32 `json:"id"`
	}
	if err := json.Unmarshal(p, &cmd); err != nil || cmd.ID != cfFirstPubID {
		t.Fatalf("first publish %s: id %d (%v), want %d", p, cmd.ID, err, cfFirstPubID)
	}
	msg := fmt.Sprintf("{}\n{\"id\":%d,\"publish\":{}}\n"+
		`{"push":{"channel":"%s","pub":{"data":{"body":"lg %d %s"},"info":{"user":"lg_00001","client":"a"},"offset":2}}}`+"\n"+
		`{"push":{"channel":"elsewhere","pub":{"data":{"body":"lg %d %s"},"offset":9}}}`,
		cmd.ID, c.room.channel, sent, cid, sent, cid)
	lg.tgt.handle(c, []byte(msg))

	select {
	case p := <-pong:
		if string(p) != "{}" {
			t.Errorf("pong %q, want {}", p)
		}
	case <-time.After(5 * time.Second):
		t.Error("no pong to the server's ping")
	}
	if st.acked.Load() != 1 || st.ackLat.n.Load() != 1 || st.expectedLive.Load() != 2 {
		t.Errorf("acked %d, ack latencies %d, expected deliveries %d; want 1 1 2", st.acked.Load(), st.ackLat.n.Load(), st.expectedLive.Load())
	}
	if st.delivered.Load() != 1 || st.foreign.Load() != 1 || st.lat.n.Load() != 1 || c.count(2) != 1 {
		t.Errorf("delivered %d foreign %d latencies %d count(2) %d; want 1 1 1 1", st.delivered.Load(), st.foreign.Load(), st.lat.n.Load(), c.count(2))
	}
	// The ack names no offset: the delivery tells it. A second ack whose
	// publication reached nobody stays lost for every member.
	c.cf.acked = append(c.cf.acked, "lg-1-never")
	res := &result{}
	st.evaluate(res, st.ackedSeqs())
	if res.Expected != 4 || res.Lost != 3 || res.Duplicates != 0 {
		t.Errorf("expected %d lost %d duplicates %d; want 4 3 0 (member 2 got nothing, nobody got the second)", res.Expected, res.Lost, res.Duplicates)
	}
	if errs := st.errs.snapshot(); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
}

func TestCentrifugoFlags(t *testing.T) {
	o, err := parseFlags([]string{"-target", "centrifugo", "-url", "http://127.0.0.1:8000", "-centrifugo-secret", "k"})
	if err != nil {
		t.Fatal(err)
	}
	if o.wsBases[0] != "ws://127.0.0.1:8000/connection/websocket" {
		t.Errorf("WebSocket base %q", o.wsBases[0])
	}
	for _, bad := range [][]string{
		{"-target", "centrifugo"},
		{"-target", "centrifugo", "-centrifugo-secret", "k", "-history-check"},
		{"-target", "centrifugo", "-centrifugo-secret", "k", "-reconnect"},
		{"-target", "nats"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// TestCentrifugoLive runs a small stage against a real Centrifugo with
// scripts/centrifugo.json. CI does not install Centrifugo (a benchmark
// peer is never vendored): set MOIM_CENTRIFUGO_BIN to a binary, e.g. from
// GOBIN=/tmp/peerbin go install github.com/centrifugal/centrifugo/v6@v6.9.1.
func TestCentrifugoLive(t *testing.T) {
	bin := os.Getenv("MOIM_CENTRIFUGO_BIN")
	if bin == "" {
		t.Skip("MOIM_CENTRIFUGO_BIN not set: no Centrifugo to run against")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const secret = "loadgen-live-test-secret-0123456789"
	cmd := exec.Command(bin, "--config", filepath.Join("..", "centrifugo.json"))
	cmd.Env = append(os.Environ(), fmt.Sprintf("CENTRIFUGO_HTTP_SERVER_PORT=%d", port), "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY="+secret)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("centrifugo not healthy on %s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code := run([]string{"-target", "centrifugo", "-url", base, "-centrifugo-secret", secret,
		"-users", "20", "-room-size", "10", "-rate", "20", "-duration", "2s", "-drain", "5s", "-settle", "100ms",
		"-pid", fmt.Sprint(cmd.Process.Pid)})
	if code != 0 {
		t.Errorf("loadgen against centrifugo exited %d, want 0 (every stage passing)", code)
	}
}
