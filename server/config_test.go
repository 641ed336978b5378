package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"moim/chatlog"
	"moim/rooms"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var updateREADME = flag.Bool("update-readme", false, "rewrite README's configuration table from the settings table")

// TestREADMEConfigTable holds README's configuration table to the settings
// table, row for row: name, flag, default and meaning. With -update-readme
// it rewrites README's table instead.
func TestREADMEConfigTable(t *testing.T) {
	var want []string
	for _, s := range (&Config{}).settings() {
		def := s.unset
		if def == "" && s.def != "" {
			def = "`" + s.def + "`"
		}
		if def != "" {
			def = " " + def + " "
		} else {
			def = " "
		}
		want = append(want, fmt.Sprintf("| `%s` | `-%s` |%s| %s |", s.env, flagName(s.env), def, s.doc))
	}
	want = append(want, "| `MOIM_<NAME>_FILE` | — | — | Reads `MOIM_<NAME>` from this file (Docker/Kubernetes secrets), e.g. `MOIM_JWT_SECRET_FILE`, `MOIM_MYSQL_DSN_FILE`. |")

	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	header := slices.Index(lines, "| Variable | Flag | Default | Meaning |")
	if header < 0 || header+1 >= len(lines) || lines[header+1] != "| --- | --- | --- | --- |" {
		t.Fatal("README has no configuration table headed | Variable | Flag | Default | Meaning |")
	}
	first, end := header+2, header+2
	for end < len(lines) && strings.HasPrefix(lines[end], "|") {
		end++
	}
	if *updateREADME {
		out := slices.Concat(lines[:first], want, lines[end:])
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have := lines[first:end]
	for i := 0; i < max(len(have), len(want)); i++ {
		h, w := "(missing)", "(missing)"
		if i < len(have) {
			h = have[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if h != w {
			t.Errorf("README configuration row %d\n have %s\n want %s", i+1, h, w)
		}
	}
	if t.Failed() {
		t.Log("the settings table in server/config.go is the source; `go test ./server -run TestREADMEConfigTable -update-readme` rewrites README's table from it")
	}
}

// TestConfigHelpListsEverySetting: -h shows each setting's flag, its
// variable and its meaning, straight from the table.
func TestConfigHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	if _, err := loadConfig([]string{"-h"}, env(nil), &out); err == nil {
		t.Fatal("-h must stop the node")
	}
	for _, s := range (&Config{}).settings() {
		if !strings.Contains(out.String(), "-"+flagName(s.env)) || !strings.Contains(out.String(), "($"+s.env+")") {
			t.Errorf("-h does not list %s", s.env)
		}
	}
	if !strings.Contains(out.String(), "(default: hostname)") || !strings.Contains(out.String(), `(default "10/10m")`) {
		t.Errorf("-h does not show defaults:\n%s", out.String())
	}
}

// TestConfigDefaultsAreValid: every default passes its own parser, so a
// node with nothing set starts.
func TestConfigDefaultsAreValid(t *testing.T) {
	var c Config
	for _, s := range c.settings() {
		if err := s.set(s.def); err != nil {
			t.Errorf("%s: default %q: %v", s.env, s.def, err)
		}
	}
}

func TestConfigDefaultsEnvAndFlags(t *testing.T) {
	cfg, err := loadConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.DataDir != "./data" || cfg.BcryptCost != 10 || cfg.TokenTTL != 24*time.Hour || !cfg.Embedded() || cfg.NodeID == "" {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = loadConfig([]string{"-addr", ":9999", "-bcrypt-cost", "4"},
		env(map[string]string{"MOIM_ADDR": ":7000", "MOIM_NODE_ID": "n1", "MOIM_BCRYPT_COST": "12"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9999" || cfg.NodeID != "n1" || cfg.BcryptCost != 4 {
		t.Fatalf("flags must override env, env must override defaults: %+v", cfg)
	}
	// A linger of 0 turns the wait off; it is not refused as a zero duration.
	for v, want := range map[string]time.Duration{"": 2 * time.Millisecond, "0": 0, "500us": 500 * time.Microsecond} {
		e := map[string]string{}
		if v != "" {
			e["MOIM_REDIS_LINGER"] = v
		}
		if cfg, err := loadConfig(nil, env(e), &bytes.Buffer{}); err != nil || cfg.RedisLinger != want {
			t.Errorf("MOIM_REDIS_LINGER=%q: %v, %v; want %v", v, cfg.RedisLinger, err, want)
		}
	}
}

// The sandbox's test money is the default only where a node is plainly a
// developer's or a demo's; anywhere else payments stay off until chosen.
func TestConfigPaymentsDefaultOnlyWhenEmbedded(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "sandbox"},
		{map[string]string{"MOIM_PAYMENTS": "off"}, "off"},
		{map[string]string{"MOIM_REDIS_URL": "redis://r:6379", "MOIM_JWT_SECRET": secret}, "off"},
		{map[string]string{"MOIM_MYSQL_DSN": "u:p@tcp(h:3306)/db", "MOIM_JWT_SECRET": secret}, "off"},
		{map[string]string{"MOIM_REDIS_URL": "redis://r:6379", "MOIM_MONGO_URI": "mongodb://m/moim", "MOIM_JWT_SECRET": secret, "MOIM_PAYMENTS": "Sandbox"}, "sandbox"},
		{map[string]string{"MOIM_PAYMENTS": "toss", "MOIM_TOSS_SECRET_KEY": "test_sk_x", "MOIM_TOSS_CLIENT_KEY": "test_ck_x"}, "toss"},
	} {
		cfg, err := loadConfig(nil, env(tc.env), &bytes.Buffer{})
		if err != nil || cfg.Payments != tc.want {
			t.Errorf("env %v: payments %q, %v; want %q", tc.env, cfg.Payments, err, tc.want)
		}
	}
	// Toss's SDK must be an http(s) URL: its origin enters the page's
	// Content-Security-Policy.
	bad := map[string]string{"MOIM_PAYMENTS": "toss", "MOIM_TOSS_SECRET_KEY": "test_sk_x", "MOIM_TOSS_CLIENT_KEY": "test_ck_x", "MOIM_TOSS_SDK": "javascript:alert(1)"}
	if _, err := loadConfig(nil, env(bad), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "MOIM_TOSS_SDK") {
		t.Errorf("a javascript: SDK URL: %v", err)
	}
}

func TestConfigRejectsBadSettings(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cases := []struct {
		env     map[string]string
		setting string
	}{
		{map[string]string{"MOIM_REDIS_URL": "redis://127.0.0.1:6379"}, "MOIM_JWT_SECRET"},
		{map[string]string{"MOIM_MYSQL_DSN": "u:p@tcp(h:3306)/db"}, "MOIM_JWT_SECRET"},
		{map[string]string{"MOIM_JWT_SECRET": "short"}, "MOIM_JWT_SECRET"},
		{map[string]string{"MOIM_BCRYPT_COST": "3"}, "MOIM_BCRYPT_COST"},
		{map[string]string{"MOIM_BCRYPT_COST": "ten"}, "MOIM_BCRYPT_COST"},
		{map[string]string{"MOIM_TOKEN_TTL": "forever"}, "MOIM_TOKEN_TTL"},
		{map[string]string{"MOIM_STARTUP_TIMEOUT": "-1s"}, "MOIM_STARTUP_TIMEOUT"},
		{map[string]string{"MOIM_REDIS_LINGER": "-1ms"}, "MOIM_REDIS_LINGER"},
		{map[string]string{"MOIM_REDIS_LINGER": "2s"}, "MOIM_REDIS_LINGER"},
		{map[string]string{"MOIM_LOG_LEVEL": "loud"}, "MOIM_LOG_LEVEL"},
		{map[string]string{"MOIM_REDIS_PREFIX": "a{b}"}, "MOIM_REDIS_PREFIX"},
		{map[string]string{"MOIM_JWT_SECRET": secret, "MOIM_DATA_DIR": " "}, "MOIM_DATA_DIR"},
		{map[string]string{"MOIM_PAYMENTS": "paypal"}, "MOIM_PAYMENTS"},
		{map[string]string{"MOIM_PAYMENTS": "toss", "MOIM_TOSS_CLIENT_KEY": "test_ck_x"}, "MOIM_PAYMENTS"},
		{map[string]string{"MOIM_PAYMENTS": "toss", "MOIM_TOSS_SECRET_KEY": "test_sk_x", "MOIM_TOSS_CLIENT_KEY": "test_ck_x", "MOIM_TOSS_API": "ftp://x"}, "MOIM_TOSS_API"},
	}
	for _, tc := range cases {
		_, err := loadConfig(nil, env(tc.env), &bytes.Buffer{})
		var ce *configError
		if !errors.As(err, &ce) || ce.setting != tc.setting {
			t.Errorf("env %v: got %v, want an error naming %s", tc.env, err, tc.setting)
		}
	}
}

// TestConfigReadsSettingsFromFiles is how Docker secrets reach a node:
// MOIM_JWT_SECRET_FILE=/run/secrets/jwt_secret and the like.
func TestConfigReadsSettingsFromFiles(t *testing.T) {
	dir := t.TempDir()
	secret := strings.Repeat("k", 40)
	dsn := "moim:pa ss@tcp(mysql:3306)/moim"
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	files := map[string]string{
		"MOIM_JWT_SECRET_FILE": write("jwt_secret", secret+"\n"),
		"MOIM_MYSQL_DSN_FILE":  write("mysql_dsn", dsn+"\r\n"),
	}
	cfg, err := loadConfig(nil, env(files), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JWTSecret != secret || cfg.MySQLDSN != dsn {
		t.Fatalf("from files: secret %q, dsn %q; want the files' contents without the line end", cfg.JWTSecret, cfg.MySQLDSN)
	}
	cfg, err = loadConfig([]string{"-mysql-dsn", "u:p@tcp(h:3306)/flag"}, env(files), &bytes.Buffer{})
	if err != nil || cfg.MySQLDSN != "u:p@tcp(h:3306)/flag" {
		t.Fatalf("a flag must still win over a file: %q, %v", cfg.MySQLDSN, err)
	}

	cases := []struct {
		env     map[string]string
		setting string
	}{
		{map[string]string{"MOIM_JWT_SECRET": secret, "MOIM_JWT_SECRET_FILE": files["MOIM_JWT_SECRET_FILE"]}, "MOIM_JWT_SECRET"},
		{map[string]string{"MOIM_JWT_SECRET_FILE": filepath.Join(dir, "missing")}, "MOIM_JWT_SECRET_FILE"},
		{map[string]string{"MOIM_JWT_SECRET_FILE": write("short", "short\n")}, "MOIM_JWT_SECRET"},
	}
	for _, tc := range cases {
		_, err := loadConfig(nil, env(tc.env), &bytes.Buffer{})
		var ce *configError
		if !errors.As(err, &ce) || ce.setting != tc.setting {
			t.Errorf("env %v: got %v, want an error naming %s", tc.env, err, tc.setting)
		}
	}
}

// TestExitCodes runs the node's main path: bad config exits 2 with one
// line naming the setting; an unreachable service exits 1 naming it.
func TestExitCodes(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cases := []struct {
		env  map[string]string
		code int
		line string
	}{
		{map[string]string{"MOIM_REDIS_URL": "redis://127.0.0.1:1/0"}, 2, "MOIM_JWT_SECRET"},
		{map[string]string{"MOIM_REDIS_URL": "http://nope", "MOIM_JWT_SECRET": secret}, 2, "MOIM_REDIS_URL"},
		{map[string]string{"MOIM_MONGO_URI": "postgres://x", "MOIM_JWT_SECRET": secret}, 2, "MOIM_MONGO_URI"},
		{map[string]string{"MOIM_MYSQL_DSN": "not a dsn", "MOIM_JWT_SECRET": secret}, 2, "MOIM_MYSQL_DSN"},
		{map[string]string{"MOIM_REDIS_URL": "redis://127.0.0.1:1/0", "MOIM_JWT_SECRET": secret, "MOIM_STARTUP_TIMEOUT": "300ms"}, 1, "MOIM_REDIS_URL: not reachable after 300ms"},
		{map[string]string{"MOIM_MYSQL_DSN": "u:p@tcp(127.0.0.1:1)/x", "MOIM_JWT_SECRET": secret, "MOIM_STARTUP_TIMEOUT": "300ms"}, 1, "MOIM_MYSQL_DSN: not reachable after 300ms"},
	}
	for _, tc := range cases {
		tc.env["MOIM_DATA_DIR"] = t.TempDir()
		var stderr bytes.Buffer
		code := run(nil, env(tc.env), &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.HasPrefix(last, "moim: ") || !strings.Contains(last, tc.line) {
			t.Errorf("env %v: exit %d with %q; want exit %d and a line naming %q", tc.env, code, last, tc.code, tc.line)
		}
	}
}

// TestEmbeddedNodeKeepsDataAcrossRestart is the newcomer's path: no
// services configured, a node started, stopped and started again on the
// same data directory.
func TestEmbeddedNodeKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg, err := loadConfig([]string{"-data-dir", dir, "-addr", "127.0.0.1:0", "-bcrypt-cost", "4", "-log-level", "warn"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	first := startTestNode(t, cfg)
	alice, bob := first.user(t, "Alice"), first.user(t, "Bob")
	room := alice.createRoom(map[string]any{"name": "Running club", "member_ids": []int64{bob.id}})
	var me struct{ Username string }
	alice.must(200, "GET", "/api/me", nil, &me)
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "keep", "body": "저장되나요?"}, nil)
	first.stop()

	secret, err := os.ReadFile(filepath.Join(dir, "jwt-secret"))
	if err != nil || len(strings.TrimSpace(string(secret))) < 32 {
		t.Fatalf("the generated JWT secret is not kept in the data dir: %v", err)
	}
	second := startTestNode(t, cfg)
	c := second.anon(t)
	c.must(200, "POST", "/api/auth/login", map[string]any{"username": me.Username, "password": "password1"}, nil)
	// Tokens issued before the restart still work: the secret was kept.
	alice.base, bob.base = second.url, second.url
	if alice.kit().Roles()[room.ID] != "owner" || bob.kit().Roles()[room.ID] != "member" {
		t.Fatal("the room did not survive the restart")
	}
	// The in-process engine starts empty; the membership mirror is rebuilt
	// from SQL, and the message written before the stop comes from the
	// store.
	second.mirrored(t, room.ID, map[int64]bool{alice.id: true, bob.id: true})
	var l messageList
	bob.must(200, "GET", urlf("/api/rooms/%d/messages", room.ID), nil, &l)
	if len(l.Messages) != 1 || l.Messages[0].Body != "저장되나요?" || l.Messages[0].Seq != 1 {
		t.Fatalf("history after restart: %+v", l.Messages)
	}
	var ack struct{ Seq int64 }
	alice.must(201, "POST", urlf("/api/rooms/%d/messages", room.ID), map[string]any{"cid": "next", "body": "next"}, &ack)
	if ack.Seq != 2 {
		t.Fatalf("the first message after a restart got seq %d, want 2", ack.Seq)
	}
}

var _ = alsoOn(onCluster, TestMirrorIsRebuiltWhenRedisLosesIt)

func TestMirrorIsRebuiltWhenRedisLosesIt(t *testing.T) {
	cfg := testConfig(t)
	n := startTestNode(t, cfg)
	owner, guest := n.user(t, "Owner"), n.user(t, "Guest")
	room := owner.createRoom(map[string]any{"name": "Choir", "member_ids": []int64{guest.id}})
	ctx := context.Background()
	keys := chatlog.Keys{Prefix: cfg.RedisPrefix, Shards: cfg.StreamShards}
	m := rooms.NewRedisMirror(n.backends.redis, keys)
	for _, k := range []string{keys.Members(room.ID), cfg.RedisPrefix + ":members-synced"} {
		if err := n.backends.redis.Del(ctx, k).Err(); err != nil { // one key per call: a cluster keeps them in different slots
			t.Fatal(err)
		}
	}
	copied, err := m.Rebuild(ctx, n.backends.sql)
	if err != nil || copied != 2 {
		t.Fatalf("rebuild copied %d members, err %v; want 2", copied, err)
	}
	n.mirrored(t, room.ID, map[int64]bool{owner.id: true, guest.id: true})
	if copied, _ = m.Rebuild(ctx, n.backends.sql); copied != 0 {
		t.Fatalf("a second rebuild copied %d members; the mirror was already built", copied)
	}
}
