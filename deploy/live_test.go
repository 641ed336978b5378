package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"
)

// TestLiveObservability runs the stack's observability for real: two Moim
// nodes built from this checkout (sharing the test Redis and MariaDB, as
// the compose nodes share theirs), the nginx load balancer with
// deploy/nginx/moim.conf in front, and a Prometheus scraping both nodes
// with deploy/prometheus/prometheus.yml's job and alerts.yml loaded. After
// a little real traffic through nginx (sign-ups, a room, WebSocket
// messages, a deposit, a dues payment and a refused one), every PromQL
// expression of the dashboard and of the alert rules is run through
// Prometheus's HTTP API and must return data from the nodes.
//
// MongoDB is each node's embedded FerretDB unless MOIM_TEST_MONGO_URI
// names a real one: nothing here reads history across nodes.
func TestLiveObservability(t *testing.T) {
	promBin := needTool(t, "prometheus", "prometheus")
	nginxBin := needTool(t, "nginx", "nginx")
	redisURL, adminDSN := os.Getenv("MOIM_TEST_REDIS_URL"), os.Getenv("MOIM_TEST_MYSQL_DSN")
	if redisURL == "" || adminDSN == "" {
		if inCI {
			t.Fatal("CI=true but MOIM_TEST_REDIS_URL or MOIM_TEST_MYSQL_DSN is not set; .ci/run starts both")
		}
		t.Skip("two nodes need a shared Redis and SQL: set MOIM_TEST_REDIS_URL and MOIM_TEST_MYSQL_DSN (scripts/services.sh)")
	}
	work := t.TempDir()
	bin := buildServer(t, work)
	secrets := filepath.Join(work, "secrets")
	runTool(t, repoRoot(t), 30*time.Second, "bash", "deploy/secrets.sh", secrets)

	env := map[string]string{
		"MOIM_REDIS_URL":       redisURL,
		"MOIM_REDIS_PREFIX":    randomName("deploy"),
		"MOIM_MYSQL_DSN":       createDatabase(t, adminDSN),
		"MOIM_JWT_SECRET_FILE": filepath.Join(secrets, "jwt_secret"),
		"MOIM_BCRYPT_COST":     "4",
		"MOIM_STREAM_SHARDS":   "4",
		"MOIM_LOG_LEVEL":       "warn",
		"MOIM_STARTUP_TIMEOUT": "30s",
	}
	t.Cleanup(func() { dropRedisPrefix(t, redisURL, env["MOIM_REDIS_PREFIX"]) })
	if uri := os.Getenv("MOIM_TEST_MONGO_URI"); uri != "" {
		env["MOIM_MONGO_URI"] = strings.TrimSuffix(uri, "/") + "/" + randomName("moim_deploy_")
	}
	// One after the other: both migrate the same fresh database.
	var nodes []string
	for i := 1; i <= 2; i++ {
		nodes = append(nodes, startNode(t, bin, work, fmt.Sprintf("moim-%d", i), env))
	}
	lb := startNginx(t, nginxBin, work, nodes)
	prom := startPrometheus(t, promBin, work, nodes)

	const sent = 20
	drive(t, lb, sent)

	// Both targets up, the traffic visible, the batchers caught up.
	prom.waitFor(t, "both nodes scraped and up", func() error {
		var targets struct {
			ActiveTargets []struct {
				ScrapeURL string
				Health    string
				Labels    map[string]string
			}
		}
		if err := prom.get("/api/v1/targets?state=active", &targets); err != nil {
			return err
		}
		up := 0
		for _, tg := range targets.ActiveTargets {
			if tg.Labels["job"] == "moim" && tg.Health == "up" {
				up++
			}
		}
		if up != len(nodes) {
			return fmt.Errorf("%d of %d moim targets up: %+v", up, len(nodes), targets.ActiveTargets)
		}
		return nil
	})
	for expr, want := range map[string]float64{
		`sum(up{job="moim"})`:                     2,
		`sum(moim_hub_connections{job="moim"})`:   3,
		`count(moim_hub_connections{job="moim"})`: 2,
		`sum(moim_hub_messages_accepted_total{job="moim"}) >= bool ` + strconv.Itoa(sent): 1,
		`sum(moim_store_messages_stored_total{job="moim"}) >= bool ` + strconv.Itoa(sent): 1,
		`sum(moim_fee_transfers_total{job="moim", kind="deposit", result="done"})`:        1,
		`sum(moim_fee_transfers_total{job="moim", result="refused"})`:                     1,
		`sum(moim_hub_errors_total{job="moim", code="not_member"})`:                       1,
	} {
		prom.waitFor(t, expr+" = "+fmt.Sprint(want), func() error {
			v, err := prom.scalar(expr)
			if err == nil && v != want {
				err = fmt.Errorf("got %v", v)
			}
			return err
		})
	}
	// A scrape after the last change, so every rate window holds it.
	time.Sleep(2 * time.Second)

	exported := map[string]bool{"up": true}
	for _, n := range nodes {
		for name := range sampleNames(t, "http://"+n+"/metrics") {
			exported[name] = true
		}
	}
	check := checker{prom: prom, exported: exported}

	// The check itself must catch a panel on a metric nobody exports.
	if p := check.run(query{"a bogus panel", `sum(rate(moim_hub_no_such_metric_total[1m]))`}, false); len(p) == 0 {
		t.Fatal("a query of a metric the nodes do not export passed the check")
	}

	var problems []string
	d := readDashboard(t)
	for _, q := range d.queries() {
		problems = append(problems, check.run(q, false)...)
	}

	r := readYAML[rules](t, "deploy/prometheus/alerts.yml")
	var alerts []string
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			alerts = append(alerts, rule.Alert)
			where := "alert " + rule.Alert
			if _, err := prom.query(rule.Expr); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			}
			m := threshold.FindStringSubmatch(rule.Expr)
			if m == nil {
				problems = append(problems, where+": expression is not `<measure> <comparison> <number>`")
				continue
			}
			// A healthy node has no "unavailable" errors, so that series
			// does not exist yet; its metric must still be exported.
			noDataOK := rule.Alert == "MoimSendErrorRate"
			problems = append(problems, check.run(query{where + " measure", m[1]}, noDataOK)...)
		}
	}
	t.Logf("ran %d dashboard queries and %d alert expressions (each with its measure) against 2 live nodes", len(d.queries()), len(alerts))
	if len(problems) > 0 {
		t.Errorf("%d dashboard or alert queries fail against live nodes:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}

	// Prometheus loaded every rule and evaluates each without error.
	prom.waitFor(t, "every alert rule loaded and evaluated", func() error {
		var res struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
					LastEvaluation          time.Time
				}
			}
		}
		if err := prom.get("/api/v1/rules?type=alert", &res); err != nil {
			return err
		}
		var loaded []string
		for _, g := range res.Groups {
			for _, rl := range g.Rules {
				if rl.Health != "ok" || rl.LastEvaluation.IsZero() {
					return fmt.Errorf("rule %s: health %q %s", rl.Name, rl.Health, rl.LastError)
				}
				loaded = append(loaded, rl.Name)
			}
		}
		if !slices.Equal(loaded, alerts) {
			return fmt.Errorf("loaded %v, alerts.yml has %v", loaded, alerts)
		}
		return nil
	})
}

// checker runs one expression against the live Prometheus.
type checker struct {
	prom     *prometheus
	exported map[string]bool
}

// run returns what is wrong with q: a metric no node exports, an invalid
// expression, or (unless noDataOK) an empty result.
func (c checker) run(q query, noDataOK bool) []string {
	var out []string
	for _, name := range metricNames(q.expr) {
		if !c.exported[name] {
			out = append(out, fmt.Sprintf("%s queries %s, which no node exports: %s", q.where, name, q.expr))
		}
	}
	n, err := c.prom.query(q.expr)
	switch {
	case err != nil:
		out = append(out, fmt.Sprintf("%s: %v: %s", q.where, err, q.expr))
	case n == 0 && !noDataOK:
		out = append(out, fmt.Sprintf("%s returns no data: %s", q.where, q.expr))
	}
	return out
}

// drive is a little real use through the load balancer: three users, a
// room, WebSocket messages to members on either node, one send to a room
// the sender is not in, and money moving into the room's fund.
func drive(t *testing.T, lb string, sent int) {
	alice, bob, carol := signup(t, lb, "Alice"), signup(t, lb, "Bob"), signup(t, lb, "Carol")
	var room, other struct{ ID int64 }
	alice.do(t, 201, "POST", "/api/rooms", map[string]any{"name": "Hiking club", "member_ids": []int64{bob.id}}, &room)
	carol.do(t, 201, "POST", "/api/rooms", map[string]any{"name": "Choir"}, &other)

	// Through nginx as a browser on the same origin: the node checks the
	// Origin against the Host nginx passes on.
	sender := dialWS(t, lb, alice)
	readers := []*wsConn{dialWS(t, lb, bob), dialWS(t, lb, bob)}
	for i := range sent {
		cid := fmt.Sprintf("m-%d", i)
		sender.send(t, map[string]any{"type": "send", "room": room.ID, "cid": cid, "body": fmt.Sprintf("안녕하세요 %d", i)})
		sender.await(t, "ack of "+cid, func(f wsFrame) bool { return f.Type == "ack" && f.CID == cid })
	}
	for _, r := range readers {
		got := 0
		r.await(t, "every message", func(f wsFrame) bool {
			if f.Type == "msg" && f.Room == room.ID && f.From == alice.id {
				got++
			}
			return got == sent
		})
	}
	sender.send(t, map[string]any{"type": "send", "room": other.ID, "cid": "intruder", "body": "hi"})
	sender.await(t, "not_member", func(f wsFrame) bool { return f.Type == "error" && f.Code == "not_member" })

	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	alice.do(t, 201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	bob.do(t, 201, "POST", "/api/wallet/deposit", map[string]any{"amount": 50000, "idempotency_key": "d1"}, nil)
	bob.do(t, 201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "idempotency_key": "p1"}, nil)
	bob.do(t, 409, "POST", rp+"/fund/pay", map[string]any{"amount": 100000, "idempotency_key": "p2"}, nil)
}

// user is a signed-up account with its token.
type user struct {
	base, token string
	id          int64
}

func signup(t *testing.T, base, name string) *user {
	t.Helper()
	u := &user{base: base}
	username := "u_" + randomName("")
	var created struct{ ID int64 }
	u.do(t, 201, "POST", "/api/auth/signup", map[string]any{"username": username, "password": "password1", "display_name": name}, &created)
	var login struct{ Token string }
	u.do(t, 200, "POST", "/api/auth/login", map[string]any{"username": username, "password": "password1"}, &login)
	u.id, u.token = created.ID, login.Token
	return u
}

func (u *user) do(t *testing.T, want int, method, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, raw, err)
		}
	}
}

// wsConn is one WebSocket client; the test reads and writes it from one
// goroutine.
type wsConn struct {
	conn net.Conn
	r    io.Reader
}

type wsFrame struct {
	Type string
	Room int64
	From int64
	CID  string
	Code string
	User int64
}

func dialWS(t *testing.T, base string, u *user) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {base}})}
	conn, br, _, err := d.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+url.QueryEscape(u.token))
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsConn{conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	c.await(t, "ready", func(f wsFrame) bool { return f.Type == "ready" && f.User == u.id })
	return c
}

func (c *wsConn) send(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(c.conn, b); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
}

// await reads frames (answering pings) until done says so, for at most 15 s.
func (c *wsConn) await(t *testing.T, what string, done func(wsFrame) bool) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	rw := struct {
		io.Reader
		io.Writer
	}{c.r, c.conn}
	for {
		data, err := wsutil.ReadServerText(rw)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("frame %q: %v", data, err)
		}
		if done(f) {
			return
		}
	}
}

// buildServer builds the node binary from this checkout with the race
// detector, as the project's tests run.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	bin := filepath.Join(dir, "moim")
	runTool(t, repoRoot(t), 10*time.Minute, goBin, "build", "-race", "-o", bin, "./server")
	return bin
}

// process is a server the test started; it is stopped by its PID.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t *testing.T, dir, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = env, f, f, dir
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s log (pid %d):\n%s", name, cmd.Process.Pid, tail(out, 4000))
		}
	})
	return p
}

// stop asks the process to end (SIGTERM) and kills it after 15 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200, failing early if the process exits.
func (p *process) waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			out, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(out, 4000))
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %s not ready after %s: %v", p.name, url, timeout, last)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// baseEnv is this process's environment without any MOIM_ setting a
// developer's shell may hold.
func baseEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "MOIM_") })
}

func startNode(t *testing.T, bin, work, id string, settings map[string]string) string {
	t.Helper()
	addr := freeAddr(t)
	env := baseEnv()
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	dataDir := filepath.Join(work, id)
	env = append(env, "MOIM_ADDR="+addr, "MOIM_NODE_ID="+id, "MOIM_DATA_DIR="+dataDir)
	p := start(t, work, id, env, bin)
	p.waitHTTP(t, "http://"+addr+"/readyz", 90*time.Second)
	return addr
}

// startNginx runs deploy/nginx/moim.conf with its upstream pointed at the
// nodes and its port on loopback; every other line is the deployed one.
func startNginx(t *testing.T, bin, work string, nodes []string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/nginx/moim.conf"))
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	conf := string(raw)
	upstream := "upstream moim_nodes {\n"
	for _, n := range nodes {
		upstream += "    server " + n + ";\n"
	}
	upstream += "}\n"
	for old, repl := range map[string]string{
		"    listen 8080;\n":                "    listen " + addr + ";\n",
		"    set $moim http://moim:8080;\n": "    set $moim http://moim_nodes;\n",
	} {
		if strings.Count(conf, old) != 1 {
			t.Fatalf("deploy/nginx/moim.conf must contain %q once", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "moim.conf"), []byte(upstream+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/moim.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, work, "nginx", baseEnv(), bin, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	base := "http://" + addr
	p.waitHTTP(t, base+"/lb-healthz", 15*time.Second)
	return base
}

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct{ base string }

// startPrometheus runs Prometheus with deploy/prometheus/prometheus.yml's
// "moim" job pointed at the nodes, scraping and evaluating every second,
// and alerts.yml loaded.
func startPrometheus(t *testing.T, bin, work string, nodes []string) *prometheus {
	t.Helper()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs, _ := cfg["scrape_configs"].([]any)
	var moim map[string]any
	for _, j := range jobs {
		if j, ok := j.(map[string]any); ok && j["job_name"] == "moim" {
			moim = j
		}
	}
	if moim == nil || moim["static_configs"] == nil {
		t.Fatal(`deploy/prometheus/prometheus.yml has no "moim" job with static_configs`)
	}
	moim["static_configs"] = []any{map[string]any{"targets": nodes}}
	cfg["scrape_configs"] = []any{moim}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	cfg["rule_files"] = []any{filepath.Join(root, "deploy/prometheus/alerts.yml")}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := start(t, work, "prometheus", baseEnv(), bin,
		"--config.file="+confPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	prom := &prometheus{base: "http://" + addr}
	p.waitHTTP(t, prom.base+"/-/ready", 30*time.Second)
	return prom
}

// get decodes the "data" of an API answer into out.
func (p *prometheus) get(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("invalid: %s", body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// query evaluates expr now and returns how many series it yields.
func (p *prometheus) query(expr string) (int, error) {
	var data struct {
		ResultType string
		Result     json.RawMessage
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	if data.ResultType != "vector" && data.ResultType != "matrix" {
		return 1, nil // a scalar or string always has a value
	}
	var series []json.RawMessage
	if err := json.Unmarshal(data.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// scalar is the value of an expression that yields one series.
func (p *prometheus) scalar(expr string) (float64, error) {
	var data struct {
		Result []struct{ Value [2]any }
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return 0, err
	}
	if len(data.Result) != 1 {
		return 0, fmt.Errorf("%d series", len(data.Result))
	}
	s, _ := data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// waitFor retries cond for up to 30 s: scrapes and rule evaluations run
// every second.
func (p *prometheus) waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %s: %v", what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sampleNames are the metric names in a node's /metrics exposition.
func sampleNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// createDatabase makes a fresh database on the server in adminDSN, dropped
// when the test ends, and returns a DSN for it.
func createDatabase(t *testing.T, adminDSN string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		t.Fatalf("MOIM_TEST_MYSQL_DSN: %v", err)
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	name := randomName("moim_deploy_")
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		t.Fatalf("MOIM_TEST_MYSQL_DSN: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

func dropRedisPrefix(t *testing.T, redisURL, prefix string) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("clean redis prefix %s: %v", prefix, err)
	}
}
