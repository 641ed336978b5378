package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"moim/internal/apiclient"
	"moim/internal/testkit"
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
// Messages go to each node's own SQLite store unless MOIM_TEST_MONGO_URI
// names a real one: nothing here reads history across nodes.
func TestLiveObservability(t *testing.T) {
	promBin := needTool(t, "prometheus", "prometheus")
	nginxBin := needTool(t, "nginx", "nginx")
	work := t.TempDir()
	env := nodeSettings(t, work)
	bin := buildServer(t, work)
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
		`sum(moim_fee_transfers_total{job="moim", kind="topup", result="done"})`:          1,
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
			// The backends' exporters do not run here: their rules are
			// parsed and evaluated above, and promtool's unit tests
			// (alerts_test.yml) show them firing.
			if g.Name != "moim" {
				continue
			}
			// A healthy node has no "unavailable" errors, so that series
			// does not exist yet; its metric must still be exported.
			noDataOK := rule.Alert == "MoimSendErrorRate"
			problems = append(problems, check.run(query{where + " measure", m[1]}, noDataOK)...)
		}
	}
	t.Logf("ran %d dashboard queries and %d alert expressions (the nodes' with their measures) against 2 live nodes", len(d.queries()), len(alerts))
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
		// Prometheus lists its groups by name, not in the file's order.
		slices.Sort(loaded)
		if want := slices.Sorted(slices.Values(alerts)); !slices.Equal(loaded, want) {
			return fmt.Errorf("loaded %v, alerts.yml has %v", loaded, alerts)
		}
		return nil
	})
}

// nodeSettings are the settings of nodes that share the test's Redis (under
// a prefix of their own) and a fresh SQL database, as the stacks' nodes
// share theirs, with a JWT secret from deploy/secrets.sh. Messages go to each
// node's own SQLite store unless MOIM_TEST_MONGO_URI names a MongoDB.
func nodeSettings(t *testing.T, work string) map[string]string {
	t.Helper()
	redisURL, adminDSN := os.Getenv("MOIM_TEST_REDIS_URL"), os.Getenv("MOIM_TEST_MYSQL_DSN")
	if redisURL == "" || adminDSN == "" {
		t.Fatal("MOIM_TEST_REDIS_URL or MOIM_TEST_MYSQL_DSN is not set: the nodes need a shared redis-server and MariaDB; run `make test`, which starts them, or scripts/services.sh")
	}
	secrets := filepath.Join(work, "secrets")
	runTool(t, repoRoot(t), 30*time.Second, "bash", "deploy/secrets.sh", secrets)
	env := map[string]string{
		"MOIM_REDIS_URL":       redisURL,
		"MOIM_REDIS_PREFIX":    randomName("deploy"),
		"MOIM_MYSQL_DSN":       createDatabase(t, adminDSN),
		"MOIM_JWT_SECRET_FILE": filepath.Join(secrets, "jwt_secret"),
		// The stacks' one VAPID pair: each node would sign with its own otherwise.
		"MOIM_VAPID_PUBLIC_KEY_FILE":  filepath.Join(secrets, "vapid_public_key"),
		"MOIM_VAPID_PRIVATE_KEY_FILE": filepath.Join(secrets, "vapid_private_key"),
		"MOIM_BCRYPT_COST":            "4",
		"MOIM_STREAM_SHARDS":          "4",
		"MOIM_LOG_LEVEL":              "warn",
		"MOIM_STARTUP_TIMEOUT":        "30s",
		// As docker-compose.yml's demo stack: top-ups through the sandbox.
		"MOIM_PAYMENTS": "sandbox",
	}
	t.Cleanup(func() { dropRedisPrefix(t, redisURL, env["MOIM_REDIS_PREFIX"]) })
	if uri := os.Getenv("MOIM_TEST_MONGO_URI"); uri != "" {
		env["MOIM_MONGO_URI"] = strings.TrimSuffix(uri, "/") + "/" + randomName("moim_deploy_")
	}
	return env
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
	// Bob has Alice among his contacts, so her room takes him in at once
	// (a stranger would only be invited).
	bob.Must(201, "POST", "/api/contacts", map[string]any{"username": alice.Username}, nil)
	alice.Must(201, "POST", "/api/rooms", map[string]any{"name": "Hiking club", "member_ids": []int64{bob.ID}}, &room)
	carol.Must(201, "POST", "/api/rooms", map[string]any{"name": "Choir"}, &other)

	// Through nginx as a browser on the same origin: the node checks the
	// Origin against the Host nginx passes on.
	sender := dialWS(t, lb, alice)
	readers := []*testkit.WS{dialWS(t, lb, bob), dialWS(t, lb, bob)}
	for i := range sent {
		sender.Say(room.ID, fmt.Sprintf("m-%d", i), fmt.Sprintf("안녕하세요 %d", i))
	}
	for _, r := range readers {
		got := 0
		r.AwaitWhere(func(f apiclient.Frame) bool {
			if f.Type == "msg" && f.Room == room.ID && f.From == alice.ID {
				got++
			}
			return got == sent
		})
	}
	sender.Send(map[string]any{"type": "send", "room": other.ID, "cid": "intruder", "body": "hi"})
	sender.AwaitWhere(func(f apiclient.Frame) bool { return f.Type == "error" && f.Code == "not_member" })

	rp := fmt.Sprintf("/api/rooms/%d", room.ID)
	alice.Must(201, "POST", rp+"/fund", map[string]any{"currency": "KRW"}, nil)
	bob.Must(201, "POST", "/api/wallet/topups", map[string]any{"amount": 50000, "idempotency_key": "d1"}, nil)
	bob.Must(201, "POST", rp+"/fund/pay", map[string]any{"amount": 30000, "idempotency_key": "p1"}, nil)
	bob.Must(409, "POST", rp+"/fund/pay", map[string]any{"amount": 100000, "idempotency_key": "p2"}, nil)
}
