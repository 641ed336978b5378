package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// The k6 scripts in ../k6 are run here against a real node. k6 itself
// cannot be installed on the project's machines, so node runs them with
// stand-ins for k6's modules (../k6/shim, see ../k6/README.md): the
// scripts' own setup, REST calls and WebSocket frames reach the server
// unchanged, and the test checks what the server answered and that every
// frame and route the scripts use is the documented protocol.

// k6Config is a test node's configuration for the k6 scripts: their setup
// builds rooms of strangers through member_ids, as load tests do
// (MOIM_INVITE_RULE=anyone).
func k6Config(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.InviteRule = "anyone"
	return cfg
}

// k6Summary is what ../k6/shim/run.mjs writes.
type k6Summary struct {
	Metrics    map[string]map[string]float64 `json:"metrics"`
	Thresholds map[string][]struct {
		Expr    string  `json:"expr"`
		Value   float64 `json:"value"`
		OK      bool    `json:"ok"`
		Error   string  `json:"error"`
		Samples int     `json:"samples"`
	} `json:"thresholds"`
	Checks map[string]struct {
		Passes int `json:"passes"`
		Fails  int `json:"fails"`
	} `json:"checks"`
	Problems    []string `json:"problems"`
	Interrupted []string `json:"interrupted"`
	Exceptions  []struct {
		Where   string `json:"where"`
		Message string `json:"message"`
	} `json:"exceptions"`
	// Reservation is how many VUs k6 would make for the scenarios: planned
	// before setup(), possible with arrival-rate VUs made on the way.
	Reservation struct {
		Planned  int    `json:"planned"`
		Possible int    `json:"possible"`
		Error    string `json:"error"`
	} `json:"reservation"`
	// Series is each metric's distinct tag sets: k6's time series.
	Series map[string][]map[string]string `json:"series"`
	WSSent []struct {
		URL  string `json:"url"`
		Data string `json:"data"`
	} `json:"ws_sent"`
	HTTP []struct {
		Method string `json:"method"`
		URL    string `json:"url"`
		Status int    `json:"status"`
		// Scenario is empty for setup() and teardown()'s requests.
		Scenario string `json:"scenario"`
	} `json:"http"`
}

func (s *k6Summary) metric(name, field string) float64 { return s.Metrics[name][field] }

// needNode finds node; under CI=true (.ci/run installs it) a missing node
// fails instead of skipping.
func needNode(t *testing.T) string {
	t.Helper()
	return testkit.Tool(t, "the k6 scripts cannot be run; .ci/run installs nodejs", "node", "nodejs")
}

// runK6 runs ../k6/<script> under the shim with env as the script's
// __ENV and returns its summary. Timing thresholds may fail on a busy
// machine (timing belongs in benchmarks, not tests: that includes
// dropped_iterations, rounds a slow machine could not start); the
// thresholds named in mustFail must fail; every other threshold, every
// check and the absence of script errors are the test's business.
func runK6(t *testing.T, script string, env map[string]string, mustFail ...string) *k6Summary {
	t.Helper()
	node := needNode(t)
	out := filepath.Join(t.TempDir(), "summary.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "../k6/shim/run.mjs", "../k6/"+script)
	cmd.Env = append(os.Environ(), "K6SHIM_SUMMARY="+out)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	output, err := cmd.CombinedOutput()
	t.Logf("node k6/shim/run.mjs k6/%s:\n%s", script, output)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 99) {
		t.Fatalf("k6 shim run of %s failed: %v", script, err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("k6 shim wrote no summary: %v", err)
	}
	var s k6Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("k6 shim summary: %v", err)
	}
	for _, p := range s.Problems {
		t.Errorf("%s: %s", script, p)
	}
	for _, e := range s.Exceptions {
		t.Errorf("%s: exception in %s: %s", script, e.Where, e.Message)
	}
	for _, i := range s.Interrupted {
		t.Errorf("%s: iteration interrupted: %s", script, i)
	}
	timing := regexp.MustCompile(`^(chat_e2e_latency|chat_ack_latency|http_req_duration|dropped_iterations)\b`)
	for _, key := range mustFail {
		results, ok := s.Thresholds[key]
		if !ok {
			t.Errorf("%s: no threshold %s", script, key)
		}
		for _, r := range results {
			if r.OK {
				t.Errorf("%s: threshold %s %s passed (%v), want it failed", script, key, r.Expr, r.Value)
			}
		}
	}
	for key, results := range s.Thresholds {
		for _, r := range results {
			switch {
			case slices.Contains(mustFail, key):
			case r.OK:
			case timing.MatchString(key):
				t.Logf("%s: timing threshold %s %s crossed (%.1f) on this machine", script, key, r.Expr, r.Value)
			default:
				t.Errorf("%s: threshold %s %s failed (%v)", script, key, r.Expr, r.Value)
			}
		}
	}
	for name, c := range s.Checks {
		if c.Fails > 0 || c.Passes == 0 {
			t.Errorf("%s: check %q: %d passed, %d failed", script, name, c.Passes, c.Fails)
		}
	}
	return &s
}

// protocolClientFrames reads docs/PROTOCOL.md's "Client → server" section:
// each JSON example there is a frame type and its documented fields.
func protocolClientFrames(t *testing.T) map[string]map[string]bool {
	t.Helper()
	raw, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "### Client → server")
	end := strings.Index(doc, "### Server → client")
	if start < 0 || end < start {
		t.Fatal("docs/PROTOCOL.md: no \"### Client → server\" section before \"### Server → client\"")
	}
	frames := map[string]map[string]bool{}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllStringSubmatch(doc[start:end], -1) {
		var f map[string]any
		if err := json.Unmarshal([]byte(m[1]), &f); err != nil {
			t.Fatalf("docs/PROTOCOL.md: client example is not JSON: %v\n%s", err, m[1])
		}
		typ, _ := f["type"].(string)
		if frames[typ] == nil {
			frames[typ] = map[string]bool{}
		}
		for k := range f {
			frames[typ][k] = true
		}
	}
	if len(frames) < 5 {
		t.Fatalf("docs/PROTOCOL.md: found only %d client frame types", len(frames))
	}
	return frames
}

// checkClientFrame fails a frame whose type or any field is not in the
// protocol document: the server ignores unknown fields, so a misspelt one
// would otherwise go unnoticed.
func checkClientFrame(doc map[string]map[string]bool, data string) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &f); err != nil {
		return errors.New("not a JSON object")
	}
	var typ string
	if err := json.Unmarshal(f["type"], &typ); err != nil || typ == "" {
		return errors.New("no string type")
	}
	fields, ok := doc[typ]
	if !ok {
		return fmt.Errorf("type %q is not a client frame of docs/PROTOCOL.md", typ)
	}
	for k := range f {
		if !fields[k] {
			return fmt.Errorf("field %q is not documented for %q in docs/PROTOCOL.md", k, typ)
		}
	}
	return nil
}

// openAPIRoutes reads the method and path pattern of every operation in
// openapi.json.
func openAPIRoutes(t *testing.T) map[string]*regexp.Regexp {
	t.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	routes := map[string]*regexp.Regexp{}
	param := regexp.MustCompile(`\\\{[^}]+\\\}`)
	for path, ops := range spec.Paths {
		re := regexp.MustCompile("^" + param.ReplaceAllString(regexp.QuoteMeta(path), "[^/]+") + "$")
		for method := range ops {
			routes[strings.ToUpper(method)+" "+path] = re
		}
	}
	return routes
}

// checkRoute fails a request that no operation of openapi.json describes.
func checkRoute(routes map[string]*regexp.Regexp, method, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	for key, re := range routes {
		if strings.HasPrefix(key, method+" ") && re.MatchString(u.Path) {
			return nil
		}
	}
	return fmt.Errorf("%s %s is not an operation of openapi.json", method, u.Path)
}

// checkShapes applies both document checks to everything a run sent and
// returns the frame types seen.
func checkShapes(t *testing.T, script string, s *k6Summary) map[string]int {
	t.Helper()
	doc := protocolClientFrames(t)
	types := map[string]int{}
	bad := map[string]int{} // each problem once, with how many frames had it
	badURL := map[string]bool{}
	for _, f := range s.WSSent {
		if !strings.HasSuffix(f.URL, "/ws") && !badURL[f.URL] {
			badURL[f.URL] = true
			t.Errorf("%s: WebSocket to %s, not /ws", script, f.URL)
		}
		if err := checkClientFrame(doc, f.Data); err != nil {
			bad[err.Error()]++
			if bad[err.Error()] == 1 {
				t.Errorf("%s: %v: %s", script, err, f.Data)
			}
			continue
		}
		var typed struct{ Type string }
		_ = json.Unmarshal([]byte(f.Data), &typed)
		types[typed.Type]++
	}
	for problem, count := range bad {
		if count > 1 {
			t.Errorf("%s: %d frames in all: %s", script, count, problem)
		}
	}
	routes := openAPIRoutes(t)
	for _, r := range s.HTTP {
		if err := checkRoute(routes, r.Method, r.URL); err != nil {
			t.Errorf("%s: %v", script, err)
		}
	}
	return types
}

func TestK6DocumentChecksRejectUndocumentedShapes(t *testing.T) {
	doc := protocolClientFrames(t)
	for _, ok := range []string{
		`{"type":"send","room":7,"cid":"k6-1","body":"hi"}`,
		`{"type":"send","room":7,"cid":"k6-1","body":"hi","reply_to":3}`,
		`{"type":"ping"}`,
		`{"type":"sync","rooms":{"7":0}}`,
	} {
		if err := checkClientFrame(doc, ok); err != nil {
			t.Errorf("documented frame refused: %v", err)
		}
	}
	for _, bad := range []string{
		`{"type":"send","room":7,"cid":"k6-1","body":"hi","sent_at":5}`, // extra field the server would ignore
		`{"type":"message","room":7,"body":"hi"}`,                       // no such type
		`{"room":7,"body":"hi"}`,                                        // no type
		`["send"]`,
	} {
		if checkClientFrame(doc, bad) == nil {
			t.Errorf("undocumented frame accepted: %s", bad)
		}
	}
	routes := openAPIRoutes(t)
	for _, ok := range [][2]string{{"POST", "http://h/api/rooms/7/fund/pay"}, {"GET", "http://h/api/rooms/7/fund/ledger?format=csv"}, {"GET", "http://h/api/rooms"}} {
		if err := checkRoute(routes, ok[0], ok[1]); err != nil {
			t.Errorf("documented route refused: %v", err)
		}
	}
	for _, bad := range [][2]string{{"POST", "http://h/api/rooms/7/fund/payment"}, {"DELETE", "http://h/api/wallet"}, {"GET", "http://h/api/rooms/7/8"}} {
		if checkRoute(routes, bad[0], bad[1]) == nil {
			t.Errorf("undocumented route accepted: %s %s", bad[0], bad[1])
		}
	}
}

// TestK6ChatScript runs k6/chat.js's two short stages (4 users at 8 msg/s,
// then 6 at 12, rooms of 2) against a real node: the script's setup makes
// users and rooms over REST, every VU logs in, connects, sends, and counts
// what comes back.
func TestK6ChatScript(t *testing.T) {
	n := startTestNode(t, k6Config(t))
	s := runK6(t, "chat.js", map[string]string{
		"BASE_URL": n.url, "STAGES": "4:8,6:12", "ROOM_SIZE": "2", "CONNECT_TIME": "4s", "STAGE_DURATION": "3s",
		"DRAIN": "3s", "PAUSE": "1s", "PING_EVERY": "1s", "USER_PREFIX": "k6chat", "PASSWORD": "k6-load-test",
		"SETUP_ONLY": "", "RUN_ID": "", "WS_URL": "", "BODY_SIZE": "64", "READY_TIMEOUT": "", "START_AT": "",
	})

	// Each user sends every 500 ms for 3 s: 6 slots each, 60 in all, each
	// either sent or reported as skipped by a machine that fell behind.
	sent, skipped := s.metric("chat_sent", "count"), s.metric("chat_sends_skipped", "count")
	if sent == 0 || sent+skipped != 60 {
		t.Errorf("sent %v + skipped %v, want 60 slots", sent, skipped)
	}
	acked := s.metric("chat_acked", "count")
	if acked != sent {
		t.Errorf("acked %v of %v sent", acked, sent)
	}
	want := s.metric("chat_deliveries_expected", "count")
	got := s.metric("chat_received", "count")
	late := s.metric("chat_late_connections", "count")
	switch {
	case want != 2*acked:
		t.Errorf("deliveries expected %v, want 2 per ack of %v", want, acked)
	case late == 0 && got != want:
		t.Errorf("deliveries: expected %v, received %v", want, got)
	case late > 0 && (got == 0 || got > want):
		t.Errorf("deliveries: expected %v, received %v (%v VUs connected late)", want, got, late)
	case late > 0:
		// A VU that connected after sending began missed what was sent
		// before: the script reports it, and only an overloaded machine
		// (the shim's workers start slowly) gets there.
		t.Logf("%v VUs connected late on this machine: %v of %v deliveries", late, got, want)
	}
	if e2e := s.metric("chat_e2e_latency", "count"); e2e != got {
		t.Errorf("end-to-end latency has %v samples for %v deliveries", e2e, got)
	}
	if errs := s.Metrics["chat_errors"]; errs["passes"] != 0 || errs["fails"] != acked {
		t.Errorf("chat_errors: %v errors, %v successes for %v acks", errs["passes"], errs["fails"], acked)
	}
	if d, g := s.metric("chat_duplicates", "count"), s.metric("chat_gaps", "count"); d != 0 || g != 0 {
		t.Errorf("%v duplicates, %v gaps", d, g)
	}
	if s.metric("ws_sessions", "count") != 10 {
		t.Errorf("%v WebSocket sessions, want 10 (4 + 6 VUs)", s.metric("ws_sessions", "count"))
	}

	types := checkShapes(t, "chat.js", s)
	if float64(types["send"]) != sent || types["ping"] == 0 {
		t.Errorf("frames sent by type: %v; want every send recorded and keepalive pings", types)
	}

	// k6 makes, before setup(), as many VUs as the scenarios hold at once:
	// stage 1's 4 must be free when stage 2 takes its 6, or a 5000-user
	// stage after a 1000-user one costs 6000 VUs.
	if r := s.Reservation; r.Planned != 6 || r.Possible != 6 {
		t.Errorf("k6 would make %d VUs (up to %d) %s, want 6: the largest stage", r.Planned, r.Possible, r.Error)
	}
	checkWebSocketTags(t, s, "ws"+strings.TrimPrefix(n.url, "http")+"/ws")

	// The rooms' seqs agree with the acks: every acked message was accepted
	// once, in the room its sender is in (user i in room i/2).
	c := n.anon(t)
	var seqs int64
	for _, owner := range []string{"k6chat0", "k6chat2", "k6chat4"} {
		var login struct{ Token string }
		c.must(200, "POST", "/api/auth/login", map[string]any{"username": owner, "password": "k6-load-test"}, &login)
		c.token = login.Token
		var list struct {
			Rooms []struct {
				Name        string
				LastMessage struct{ Seq int64 } `json:"last_message"`
			}
		}
		c.must(200, "GET", "/api/rooms", nil, &list)
		if len(list.Rooms) != 1 || !strings.HasPrefix(list.Rooms[0].Name, "k6chat-s2-r") {
			t.Fatalf("%s's rooms: %+v", owner, list.Rooms)
		}
		seqs += list.Rooms[0].LastMessage.Seq
	}
	if float64(seqs) != acked {
		t.Errorf("rooms hold %d messages, %v were acked", seqs, acked)
	}
}

// checkWebSocketTags fails a WebSocket metric tagged with anything but the
// plain endpoint: k6 tags them with the URL it dialled, so a token in the
// query string would make one time series per user and write every token
// into --out files.
func checkWebSocketTags(t *testing.T, s *k6Summary, wsURL string) {
	t.Helper()
	if len(s.Series["ws_sessions"]) == 0 {
		t.Error("no ws_sessions samples")
	}
	for metric, sets := range s.Series {
		if !strings.HasPrefix(metric, "ws_") {
			continue
		}
		bad := 0
		for _, tags := range sets {
			if tags["url"] != wsURL || tags["name"] != wsURL {
				if bad++; bad == 1 {
					t.Errorf("%s tagged url=%q name=%q, want %q", metric, tags["url"], tags["name"], wsURL)
				}
			}
		}
		if bad > 1 {
			t.Errorf("%s: %d series in all with another url or name", metric, bad)
		}
	}
}

// silentWebSocket serves WebSocket upgrades and then never sends a frame,
// like a node that hangs after accepting a connection. It answers the
// client's close, and reports each upgrade request.
func silentWebSocket(t *testing.T) (wsURL string, upgrades <-chan *http.Request) {
	t.Helper()
	reqs := make(chan *http.Request, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		reqs <- r
		go func() {
			defer conn.Close()
			for {
				if _, _, err := wsutil.ReadClientData(conn); err != nil {
					return
				}
			}
		}()
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", reqs
}

// TestK6ChatReadyTimeout points chat.js's WebSockets at an endpoint that
// upgrades and then says nothing. Every VU must give up on "ready" after
// READY_TIMEOUT, count an error and its send slots as skipped, and so fail
// the run, rather than wait out the stage recording nothing.
func TestK6ChatReadyTimeout(t *testing.T) {
	n := startTestNode(t, k6Config(t))
	wsURL, upgrades := silentWebSocket(t)
	start := time.Now()
	s := runK6(t, "chat.js", map[string]string{
		"BASE_URL": n.url, "WS_URL": wsURL, "STAGES": "4:8", "ROOM_SIZE": "2", "CONNECT_TIME": "3s",
		"STAGE_DURATION": "2s", "DRAIN": "1s", "PAUSE": "1s", "PING_EVERY": "25s", "READY_TIMEOUT": "2s",
		"USER_PREFIX": "k6ready", "PASSWORD": "k6-load-test", "SETUP_ONLY": "", "RUN_ID": "", "BODY_SIZE": "64", "START_AT": "",
	}, "chat_errors", "chat_errors{scenario:stage1}", "chat_acked")
	t.Logf("run took %v", time.Since(start))

	if errs := s.Metrics["chat_errors"]; errs["passes"] != 4 || errs["fails"] != 0 {
		t.Errorf("chat_errors: %v errors, %v successes; want 4 errors, one per VU", errs["passes"], errs["fails"])
	}
	codes := map[string]bool{}
	for _, tags := range s.Series["chat_errors"] {
		codes[tags["code"]] = true
	}
	if len(codes) != 1 || !codes["no_ready"] {
		t.Errorf("chat_errors codes %v, want only no_ready", codes)
	}
	// Each user's 4 slots (one every 500 ms for 2 s) are skipped, not lost.
	if sent, skipped := s.metric("chat_sent", "count"), s.metric("chat_sends_skipped", "count"); sent != 0 || skipped != 16 {
		t.Errorf("sent %v, skipped %v; want 0 and 16", sent, skipped)
	}
	checkWebSocketTags(t, s, wsURL)
	// The token travels in the upgrade's Authorization header, which hub
	// accepts (TestK6ChatScript connects that way), not in the URL.
	for i := 0; i < 4; i++ {
		select {
		case r := <-upgrades:
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ey") || r.URL.RawQuery != "" {
				t.Errorf("upgrade %s with Authorization %q", r.URL, r.Header.Get("Authorization"))
			}
		default:
			t.Fatalf("%d WebSocket upgrades, want 4", i)
		}
	}
}

// TestK6FeesScript runs k6/fees.js's rounds (deposit, pay, retried pay,
// status, fund, ledger and its CSV) against a real node at 5 then 10 rounds
// a second for a second each, then checks the fund holds exactly one
// payment per round: the retries were not charged.
func TestK6FeesScript(t *testing.T) {
	n := startTestNode(t, k6Config(t))
	s := runK6(t, "fees.js", map[string]string{
		"BASE_URL": n.url, "MEMBERS": "3", "RATES": "5,10", "STAGE_DURATION": "1s", "CSV_EVERY": "2",
		"USER_PREFIX": "k6fee", "PASSWORD": "k6-load-test", "DUES": "30000", "RUN_ID": "",
		"PRE_VUS": "6", "MAX_VUS": "12",
	})
	var names []string
	for name := range s.Checks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, want := range []string{"sandbox top-up 201", "pay 201", "retried pay 200, same transfer", "dues status lists the payer as paid",
		"fund holds the payment", "ledger page", "ledger csv"} {
		if _, ok := s.Checks[want]; !ok {
			t.Errorf("check %q did not run; ran %q", want, names)
		}
	}
	if f := s.Metrics["http_req_failed"]; f["passes"] != 0 || f["fails"] == 0 {
		t.Errorf("http_req_failed: %v failed of %v", f["passes"], f["passes"]+f["fails"])
	}
	// The request thresholds judge the rounds: setup()'s sign-ups and
	// logins (no scenario) are not the load, and would dilute them.
	load, setup := 0, 0
	for _, r := range s.HTTP {
		if r.Scenario == "" {
			setup++
		} else {
			load++
		}
	}
	whole := map[string]bool{}
	for key, results := range s.Thresholds {
		metric, _, _ := strings.Cut(key, "{")
		if !strings.HasPrefix(metric, "http_req_") {
			continue
		}
		if got := results[0].Samples; got > load {
			t.Errorf("threshold %s takes %d samples: more than the rounds' %d requests (setup made %d)", key, got, load, setup)
		} else if got == load {
			whole[metric] = true
		}
	}
	if !whole["http_req_failed"] || !whole["http_req_duration"] {
		t.Errorf("thresholds over all %d round requests: %v; want http_req_failed and http_req_duration", load, whole)
	}
	// k6 makes VUs for the most the stages hold at once: PRE_VUS, growing
	// to MAX_VUS, not twice that because one stage's gracefulStop runs into
	// the next.
	if r := s.Reservation; r.Planned != 6 || r.Possible != 12 {
		t.Errorf("k6 would make %d VUs (up to %d) %s, want 6 (up to 12)", r.Planned, r.Possible, r.Error)
	}
	if len(s.WSSent) != 0 {
		t.Errorf("fees.js opened WebSockets: %d frames", len(s.WSSent))
	}
	checkShapes(t, "fees.js", s)

	// 5 + 10 rounds were due; any the machine could not start are dropped
	// and counted.
	rounds := s.Checks["pay 201"].Passes
	dropped := s.metric("dropped_iterations", "count")
	if rounds == 0 || float64(rounds)+dropped != 15 {
		t.Errorf("%d rounds paid + %v dropped, want 15", rounds, dropped)
	}
	c := n.anon(t)
	var login struct{ Token string }
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": "k6fee0", "password": "k6-load-test"}, &login)
	c.token = login.Token
	var list struct{ Rooms []struct{ ID int64 } }
	c.must(200, "GET", "/api/rooms", nil, &list)
	if len(list.Rooms) != 1 {
		t.Fatalf("k6fee0's rooms: %+v", list.Rooms)
	}
	var fund struct{ Balance, TotalIn int64 }
	c.must(200, "GET", urlf("/api/rooms/%d/fund", list.Rooms[0].ID), nil, &fund)
	if fund.Balance != int64(rounds)*30000 {
		t.Errorf("fund balance %d after %d paid rounds of 30000", fund.Balance, rounds)
	}
}

// TestK6FeesFailsOnDroppedRounds asks fees.js for 50 rounds a second from
// one VU, which cannot start them all: the rounds it drops must fail the
// run, not let it pass at the rate the VU managed.
func TestK6FeesFailsOnDroppedRounds(t *testing.T) {
	n := startTestNode(t, k6Config(t))
	s := runK6(t, "fees.js", map[string]string{
		"BASE_URL": n.url, "MEMBERS": "2", "RATES": "50", "STAGE_DURATION": "1s", "CSV_EVERY": "1000",
		"USER_PREFIX": "k6drop", "PASSWORD": "k6-load-test", "DUES": "30000", "RUN_ID": "",
		"PRE_VUS": "1", "MAX_VUS": "1",
	}, "dropped_iterations", "dropped_iterations{scenario:rate1}")
	rounds := s.Checks["pay 201"].Passes
	dropped := s.metric("dropped_iterations", "count")
	if rounds == 0 || dropped == 0 || float64(rounds)+dropped != 50 {
		t.Errorf("%d rounds + %v dropped, want 50 with some dropped", rounds, dropped)
	}
}
