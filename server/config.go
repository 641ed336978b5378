package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"moim/limit"
	"moim/store"
)

// Config is every setting of a node. Each field is read from an
// environment variable (or the file its _FILE twin names) and may be
// overridden by the flag of the same name (MOIM_REDIS_URL ↔ -redis-url).
type Config struct {
	// Addr is where REST, WebSocket and metrics listen. Default ":8080".
	Addr string
	// DataDir holds the embedded backends' files and the generated JWT
	// secret. Default "./data", beside where the node is started.
	DataDir string
	// RedisURL is redis://[user:pass@]host:port/db; empty runs the
	// single-node engine in process (live state in memory, every message
	// committed to DataDir/messages.db before its ack): one node only.
	RedisURL string
	// RedisPrefix starts every Redis key, so several deployments (or test
	// runs) can share one Redis. Default "moim".
	RedisPrefix string
	// MongoURI is mongodb://…, where the batcher stores what nodes accept
	// through Redis; it needs RedisURL. Empty keeps messages in
	// DataDir/messages.db (SQLite), which only one node can use. The
	// database is the URI's path, "moim" when it has none.
	MongoURI string
	// LogSync is how the SQLite message log makes a commit durable:
	// normal (the commit is in the OS before the ack: it survives the
	// process being killed or crashing; the write-ahead log is fsynced at
	// each checkpoint, every few MB) or full (fsync every commit: it also
	// survives the machine losing power). Default normal: an fsync costs
	// 2 ms at the median and 30 ms at p99 on the VMs we measure on, and
	// every ack would wait for one (docs/BENCHMARKS.md).
	LogSync store.Sync
	// InviteRule is who room creation's member_ids and invitations add
	// at once: "contacts" (the default: users who have the inviter among
	// their contacts; everyone else gets an invitation to accept) or
	// "anyone" (every user is added, for load tests that build rooms of
	// strangers).
	InviteRule string
	// MySQLDSN is go-sql-driver's DSN (user:pass@tcp(host:3306)/moim);
	// empty uses an SQLite file in DataDir.
	MySQLDSN string
	// JWTSecret signs login tokens (at least 32 bytes). Required when any
	// backend is external, since every node must share it; in fully
	// embedded mode one is generated once and kept in DataDir.
	JWTSecret string
	// TokenTTL is how long a login lasts. Default 24h.
	TokenTTL time.Duration
	// NodeID names this node in logs, metrics and Redis. Default: hostname.
	NodeID string
	// BcryptCost hashes passwords. Default 10 (about 50 ms a hash); load
	// tests that create thousands of users set 4, the minimum.
	BcryptCost int
	// StreamShards is how many persistence streams (and hash-tag groups of
	// room keys) Redis holds. Default 16: enough to spread over a Redis
	// Cluster's masters and over several batchers. Fixed once data exists.
	StreamShards int
	// AllowedOrigins are the browser origins that may open a WebSocket,
	// comma-separated. Default: the request's own host; in fully embedded
	// mode any origin.
	AllowedOrigins []string
	// SendRate and SendBurst are each WebSocket's token bucket for sends
	// and typing. Default 20/s with bursts of 40: far above a person
	// typing, low enough that one client cannot flood a room.
	SendRate  float64
	SendBurst int
	// Roles restricts what this node does: any of api (REST), hub
	// (WebSocket) and batcher (drains Redis into the store). Default all
	// three; operators may split them across processes.
	Roles []string
	// ClaimIdle is how long a persistence entry may stay pending under a
	// batcher before another claims it. Default 30s: far above a normal
	// batch write, short enough that a dead node's backlog moves soon.
	ClaimIdle time.Duration
	// TokenCheck is how often a node checks the token of every open
	// WebSocket again, to close those of deleted users and expired
	// tokens. Default 1m: one SQL query per token a minute; logouts and
	// password changes close their sockets at once without waiting for it.
	TokenCheck time.Duration
	// MirrorCheck is how often a node checks that Redis still holds the
	// membership mirror. Default 5s.
	MirrorCheck time.Duration
	// PubSubProbe is how often a node publishes to itself on every pub/sub
	// shard to prove its subscriptions still deliver. Default 5s: a
	// subscription left dead by a failover is found and replaced within
	// 15 s, for 16 tiny publishes per node per interval.
	PubSubProbe time.Duration
	// ScheduleTick is how often a node looks for due auto-pay runs and
	// due-day reminders. Default 10s: runs go out within seconds of their
	// time, and the query is one indexed range scan.
	ScheduleTick time.Duration
	// MaxAmount caps one money transfer, in won. Default 100,000,000
	// (1억): far above club dues, low enough to stop a typo's extra zeros.
	MaxAmount int64
	// Payments is the payment provider money enters and leaves through:
	// sandbox (test money, confirmed at once), toss (Toss Payments) or
	// off (top-ups and withdrawals answer 503). Default sandbox in fully
	// embedded mode, where a node is a developer's or a demo's, and off
	// anywhere else: a real deployment chooses explicitly.
	Payments string
	// TossSecretKey and TossClientKey are the Toss Payments API keys
	// (test_… or live_…); both required with Payments toss. TossAPI is
	// Toss's API origin, changed only to point at a stand-in.
	TossSecretKey, TossClientKey, TossAPI string
	// AttachmentQuota caps the megabytes of uploads (files, photos and
	// their thumbnails) one room keeps. Default 500: a year of a club's
	// receipts and photos at a few MB each, small enough that one room
	// cannot fill a node's disk or GridFS.
	AttachmentQuota int64
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LoginLimit caps failed logins per username from one address (and
	// from anywhere, for addresses that have failed it too),
	// LoginAddressLimit per client address. Defaults 10/10m and 50/10m: online guessing stalls,
	// a typo never locks anyone out past the window, and a shared NAT
	// has room for its people's mistakes.
	LoginLimit, LoginAddressLimit limit.Rule
	// JoinLimit caps wrong room passwords per user, JoinAddressLimit per
	// client address. Defaults 10/10m and 50/10m, as for logins: a room
	// password of 8 bytes or more cannot be guessed at that pace.
	JoinLimit, JoinAddressLimit limit.Rule
	// SignupLimit caps sign-ups per client address. Default 20/1h.
	SignupLimit limit.Rule
	// SendLimit caps each user's sends and edits over all their sockets,
	// REST calls and nodes. Default 200/10s: one socket at its full
	// MOIM_SEND_RATE, however many sockets the user opens.
	SendLimit limit.Rule
	// SyncLimit caps the messages sync returns to each user (plus one per
	// sync frame). Default 20000/1m: a full page for 40 rooms after a long
	// absence, not a bulk download of every room.
	SyncLimit limit.Rule
	// EventLimit caps each user's read and typing frames, which reach
	// every member of the room. Default 120/1m: typing every few seconds
	// and reading as fast as a person reads.
	EventLimit limit.Rule
	// UserSearchLimit caps user searches per user. Default 30/1m: typing
	// a name searches a few times; walking the user list does not fit.
	UserSearchLimit limit.Rule
	// UpgradeLimit caps WebSocket upgrades per client address. Default
	// 120/1m: a household reconnecting after a network blip fits; a
	// reconnect loop or a flood from one host does not. Load tests from
	// one machine set it (and SignupLimit) to "off".
	UpgradeLimit limit.Rule
	// MaxConns caps this node's WebSocket connections; past it upgrades
	// get 503 and /readyz reports the node full. Default 0: the open-file
	// limit less a tenth of it (at least 256) for backends and files.
	MaxConns int
	// TrustedProxies are the load balancers whose X-Forwarded-For names
	// the client address for the limits above. Default none: the peer
	// address is the client.
	TrustedProxies []string
	// PprofAddr, when set, serves Go's /debug/pprof profiles on a listener
	// of its own. Default off: profiles reveal internals and belong on a
	// loopback or admin-only address.
	PprofAddr string
	// StartupTimeout bounds how long start-up retries an unreachable
	// backend before giving up. Default 15s: long enough for a container
	// orchestrator's dependencies to come up, short enough to fail visibly.
	StartupTimeout time.Duration
	// VAPIDPublicKey and VAPIDPrivateKey are the Web Push signing pair
	// (base64url P-256, as web-push tools print them); both or neither.
	// Default: a pair generated on first start and kept in DataDir, which
	// suits one node; several nodes must share one pair, since browsers
	// subscribe with its public key.
	VAPIDPublicKey, VAPIDPrivateKey string
	// VAPIDSubject is the contact push services see (mailto: or https:).
	// Default mailto:admin@localhost; a real deployment names its own.
	VAPIDSubject string
	// PushWindow is how long a room's messages are gathered into one push
	// per away member. Default 5s: a burst is one notification, and a
	// message still buzzes within seconds.
	PushWindow time.Duration
	// PushLoopback lets push endpoints be plain http on a loopback
	// address. Default false: real endpoints are https on public
	// addresses (anything else is refused, against SSRF); tests with a
	// local push service set it.
	PushLoopback bool
}

// setting ties a Config field to its env var and flag.
type setting struct {
	env, flag, def, usage string
}

var settings = []setting{
	{"MOIM_ADDR", "addr", ":8080", "listen address for HTTP and WebSocket"},
	{"MOIM_DATA_DIR", "data-dir", "./data", "directory for embedded backends and the generated JWT secret"},
	{"MOIM_REDIS_URL", "redis-url", "", "Redis URL (redis://host:6379/0); empty runs the single-node engine in process"},
	{"MOIM_REDIS_PREFIX", "redis-prefix", "moim", "prefix of every Redis key"},
	{"MOIM_MONGO_URI", "mongo-uri", "", "MongoDB URI (mongodb://host:27017/moim), needs a Redis; empty keeps messages in SQLite in the data directory"},
	{"MOIM_LOG_SYNC", "log-sync", "normal", "SQLite message log durability: normal (an ack survives the process dying) or full (fsync each commit: it survives a power cut)"},
	{"MOIM_INVITE_RULE", "invite-rule", "contacts", "who member_ids and invitations add at once: contacts (users who have the inviter as a contact; others are invited) or anyone (load tests)"},
	{"MOIM_MYSQL_DSN", "mysql-dsn", "", "MySQL/MariaDB DSN (user:pass@tcp(host:3306)/moim); empty uses SQLite"},
	{"MOIM_JWT_SECRET", "jwt-secret", "", "secret for signing tokens, at least 32 bytes; required with any external backend"},
	{"MOIM_TOKEN_TTL", "token-ttl", "24h", "how long a login token is valid"},
	{"MOIM_NODE_ID", "node-id", "", "this node's name (default: hostname)"},
	{"MOIM_BCRYPT_COST", "bcrypt-cost", "10", "bcrypt cost for passwords, 4 to 31"},
	{"MOIM_STREAM_SHARDS", "stream-shards", "16", "number of Redis persistence stream shards; fixed once data exists"},
	{"MOIM_ALLOWED_ORIGINS", "allowed-origins", "", "comma-separated browser origins allowed on /ws (default: same host; any in embedded mode)"},
	{"MOIM_SEND_RATE", "send-rate", "20", "messages per second one WebSocket may send"},
	{"MOIM_SEND_BURST", "send-burst", "40", "burst of messages one WebSocket may send"},
	{"MOIM_ROLES", "roles", "api,hub,batcher", "what this node runs: any of api, hub, batcher"},
	{"MOIM_CLAIM_IDLE", "claim-idle", "30s", "how long a batcher's unstored entries wait before another batcher claims them"},
	{"MOIM_TOKEN_CHECK", "token-check", "1m", "how often open WebSockets' tokens are checked again (deleted users, expiry)"},
	{"MOIM_MIRROR_CHECK", "mirror-check", "5s", "how often to check Redis still holds the membership mirror"},
	{"MOIM_PUBSUB_PROBE", "pubsub-probe", "5s", "how often to check each pub/sub shard still delivers (publish to self); silent for 3 probes: resubscribe"},
	{"MOIM_SCHEDULE_TICK", "schedule-tick", "10s", "how often to run due auto-pay orders and due-day reminders"},
	{"MOIM_MAX_AMOUNT", "max-amount", "100000000", "largest single money transfer, in won"},
	{"MOIM_PAYMENTS", "payments", "", "payment provider: sandbox, toss or off (default: sandbox when fully embedded, otherwise off)"},
	{"MOIM_TOSS_SECRET_KEY", "toss-secret-key", "", "Toss Payments secret key (test_sk_… or live_sk_…), with MOIM_PAYMENTS=toss"},
	{"MOIM_TOSS_CLIENT_KEY", "toss-client-key", "", "Toss Payments client key (test_ck_… or live_ck_…), with MOIM_PAYMENTS=toss"},
	{"MOIM_TOSS_API", "toss-api", "https://api.tosspayments.com", "Toss Payments API origin"},
	{"MOIM_ATTACHMENT_QUOTA", "attachment-quota", "500", "megabytes of uploads one room may keep"},
	{"MOIM_LOG_LEVEL", "log-level", "info", "debug, info, warn or error"},
	{"MOIM_LOGIN_LIMIT", "login-limit", "10/10m", "failed logins per username (count/window, or off)"},
	{"MOIM_LOGIN_ADDRESS_LIMIT", "login-address-limit", "50/10m", "failed logins per client address (count/window, or off)"},
	{"MOIM_JOIN_LIMIT", "join-limit", "10/10m", "wrong room passwords per user (count/window, or off)"},
	{"MOIM_JOIN_ADDRESS_LIMIT", "join-address-limit", "50/10m", "wrong room passwords per client address (count/window, or off)"},
	{"MOIM_SIGNUP_LIMIT", "signup-limit", "20/1h", "sign-ups per client address (count/window, or off)"},
	{"MOIM_SEND_LIMIT", "send-limit", "200/10s", "sends and edits per user over all sockets, REST and nodes (count/window, or off)"},
	{"MOIM_SYNC_LIMIT", "sync-limit", "20000/1m", "messages sync returns per user (count/window, or off)"},
	{"MOIM_EVENT_LIMIT", "event-limit", "120/1m", "read and typing frames per user (count/window, or off)"},
	{"MOIM_USER_SEARCH_LIMIT", "user-search-limit", "30/1m", "user searches per user (count/window, or off)"},
	{"MOIM_UPGRADE_LIMIT", "upgrade-limit", "120/1m", "WebSocket upgrades per client address (count/window, or off)"},
	{"MOIM_MAX_CONNS", "max-conns", "auto", "most WebSocket connections this node holds (auto: the open-file limit less a tenth, at least 256)"},
	{"MOIM_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated proxy addresses/CIDRs whose X-Forwarded-For gives the client address"},
	{"MOIM_PPROF_ADDR", "pprof-addr", "", "address for Go's /debug/pprof profiles (e.g. 127.0.0.1:6060); empty: off"},
	{"MOIM_STARTUP_TIMEOUT", "startup-timeout", "15s", "how long to retry unreachable backends at start"},
	{"MOIM_VAPID_PUBLIC_KEY", "vapid-public-key", "", "Web Push VAPID public key, base64url (default: a pair generated in the data directory; several nodes must share one)"},
	{"MOIM_VAPID_PRIVATE_KEY", "vapid-private-key", "", "Web Push VAPID private key, base64url, with MOIM_VAPID_PUBLIC_KEY"},
	{"MOIM_VAPID_SUBJECT", "vapid-subject", "mailto:admin@localhost", "contact push services see in VAPID tokens (mailto: or https:)"},
	{"MOIM_PUSH_WINDOW", "push-window", "5s", "how long a room's messages are gathered into one push per away member"},
	{"MOIM_PUSH_LOOPBACK", "push-loopback", "false", "allow plain-http push endpoints on loopback (tests only)"},
}

// configError is a setting that cannot be used; the node exits with 2.
type configError struct {
	setting string
	msg     string
}

func (e *configError) Error() string { return e.setting + ": " + e.msg }

// loadConfig reads env through getenv, then flags from args.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("moim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := map[string]*string{}
	for _, s := range settings {
		def := s.def
		v, err := envOrFile(s.env, getenv)
		if err != nil {
			return Config{}, err
		}
		if v != "" {
			def = v
		}
		vals[s.env] = fs.String(s.flag, def, s.usage+" ($"+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, &configError{"flags", err.Error()}
	}
	if fs.NArg() > 0 {
		return Config{}, &configError{"flags", "unexpected argument " + strconv.Quote(fs.Arg(0))}
	}
	get := func(env string) string { return strings.TrimSpace(*vals[env]) }
	cfg := Config{
		Addr:        get("MOIM_ADDR"),
		DataDir:     get("MOIM_DATA_DIR"),
		RedisURL:    get("MOIM_REDIS_URL"),
		RedisPrefix: get("MOIM_REDIS_PREFIX"),
		MongoURI:    get("MOIM_MONGO_URI"),
		LogSync:     store.Sync(strings.ToLower(get("MOIM_LOG_SYNC"))),
		MySQLDSN:    get("MOIM_MYSQL_DSN"),
		InviteRule:  strings.ToLower(get("MOIM_INVITE_RULE")),
		JWTSecret:   *vals["MOIM_JWT_SECRET"],
		NodeID:      get("MOIM_NODE_ID"),
		LogLevel:    strings.ToLower(get("MOIM_LOG_LEVEL")),
		PprofAddr:   get("MOIM_PPROF_ADDR"),
		Payments:    strings.ToLower(get("MOIM_PAYMENTS")),
		// Secrets keep their bytes, like the JWT secret.
		TossSecretKey:   *vals["MOIM_TOSS_SECRET_KEY"],
		TossClientKey:   get("MOIM_TOSS_CLIENT_KEY"),
		TossAPI:         strings.TrimSuffix(get("MOIM_TOSS_API"), "/"),
		VAPIDPublicKey:  get("MOIM_VAPID_PUBLIC_KEY"),
		VAPIDPrivateKey: get("MOIM_VAPID_PRIVATE_KEY"),
		VAPIDSubject:    get("MOIM_VAPID_SUBJECT"),
	}
	var err error
	if cfg.TokenTTL, err = positiveDuration("MOIM_TOKEN_TTL", get("MOIM_TOKEN_TTL")); err != nil {
		return Config{}, err
	}
	if cfg.StartupTimeout, err = positiveDuration("MOIM_STARTUP_TIMEOUT", get("MOIM_STARTUP_TIMEOUT")); err != nil {
		return Config{}, err
	}
	if cfg.ClaimIdle, err = positiveDuration("MOIM_CLAIM_IDLE", get("MOIM_CLAIM_IDLE")); err != nil {
		return Config{}, err
	}
	if cfg.TokenCheck, err = positiveDuration("MOIM_TOKEN_CHECK", get("MOIM_TOKEN_CHECK")); err != nil {
		return Config{}, err
	}
	if cfg.MirrorCheck, err = positiveDuration("MOIM_MIRROR_CHECK", get("MOIM_MIRROR_CHECK")); err != nil {
		return Config{}, err
	}
	if cfg.PubSubProbe, err = positiveDuration("MOIM_PUBSUB_PROBE", get("MOIM_PUBSUB_PROBE")); err != nil {
		return Config{}, err
	}
	if cfg.ScheduleTick, err = positiveDuration("MOIM_SCHEDULE_TICK", get("MOIM_SCHEDULE_TICK")); err != nil {
		return Config{}, err
	}
	if cfg.PushWindow, err = positiveDuration("MOIM_PUSH_WINDOW", get("MOIM_PUSH_WINDOW")); err != nil {
		return Config{}, err
	}
	if cfg.PushLoopback, err = strconv.ParseBool(get("MOIM_PUSH_LOOPBACK")); err != nil {
		return Config{}, &configError{"MOIM_PUSH_LOOPBACK", "must be true or false"}
	}
	if (cfg.VAPIDPublicKey == "") != (cfg.VAPIDPrivateKey == "") {
		return Config{}, &configError{"MOIM_VAPID_PRIVATE_KEY", "set both MOIM_VAPID_PUBLIC_KEY and MOIM_VAPID_PRIVATE_KEY, or neither"}
	}
	if !strings.HasPrefix(cfg.VAPIDSubject, "mailto:") && !strings.HasPrefix(cfg.VAPIDSubject, "https://") {
		return Config{}, &configError{"MOIM_VAPID_SUBJECT", "must be a mailto: or https: URL"}
	}
	cfg.MaxAmount, err = strconv.ParseInt(get("MOIM_MAX_AMOUNT"), 10, 64)
	if err != nil || cfg.MaxAmount < 1 {
		return Config{}, &configError{"MOIM_MAX_AMOUNT", "must be a positive whole number of won"}
	}
	cfg.AttachmentQuota, err = strconv.ParseInt(get("MOIM_ATTACHMENT_QUOTA"), 10, 64)
	if err != nil || cfg.AttachmentQuota < 1 || cfg.AttachmentQuota > 1<<20 {
		return Config{}, &configError{"MOIM_ATTACHMENT_QUOTA", "must be a whole number of megabytes from 1 to 1048576"}
	}
	cfg.BcryptCost, err = strconv.Atoi(get("MOIM_BCRYPT_COST"))
	if err != nil || cfg.BcryptCost < 4 || cfg.BcryptCost > 31 {
		return Config{}, &configError{"MOIM_BCRYPT_COST", "must be an integer from 4 to 31"}
	}
	cfg.StreamShards, err = strconv.Atoi(get("MOIM_STREAM_SHARDS"))
	if err != nil || cfg.StreamShards < 1 || cfg.StreamShards > 1024 {
		return Config{}, &configError{"MOIM_STREAM_SHARDS", "must be an integer from 1 to 1024"}
	}
	cfg.SendRate, err = strconv.ParseFloat(get("MOIM_SEND_RATE"), 64)
	if err != nil || cfg.SendRate <= 0 {
		return Config{}, &configError{"MOIM_SEND_RATE", "must be a positive number"}
	}
	cfg.SendBurst, err = strconv.Atoi(get("MOIM_SEND_BURST"))
	if err != nil || cfg.SendBurst < 1 {
		return Config{}, &configError{"MOIM_SEND_BURST", "must be a positive integer"}
	}
	for _, l := range []struct {
		env  string
		rule *limit.Rule
	}{{"MOIM_LOGIN_LIMIT", &cfg.LoginLimit}, {"MOIM_LOGIN_ADDRESS_LIMIT", &cfg.LoginAddressLimit},
		{"MOIM_SIGNUP_LIMIT", &cfg.SignupLimit}, {"MOIM_UPGRADE_LIMIT", &cfg.UpgradeLimit},
		{"MOIM_JOIN_LIMIT", &cfg.JoinLimit}, {"MOIM_JOIN_ADDRESS_LIMIT", &cfg.JoinAddressLimit},
		{"MOIM_SEND_LIMIT", &cfg.SendLimit}, {"MOIM_SYNC_LIMIT", &cfg.SyncLimit}, {"MOIM_EVENT_LIMIT", &cfg.EventLimit},
		{"MOIM_USER_SEARCH_LIMIT", &cfg.UserSearchLimit}} {
		if *l.rule, err = limit.ParseRule(get(l.env)); err != nil {
			return Config{}, &configError{l.env, err.Error()}
		}
	}
	if v := get("MOIM_MAX_CONNS"); v != "auto" {
		if cfg.MaxConns, err = strconv.Atoi(v); err != nil || cfg.MaxConns < 1 {
			return Config{}, &configError{"MOIM_MAX_CONNS", "must be a positive integer or auto"}
		}
	}
	for _, p := range strings.Split(get("MOIM_TRUSTED_PROXIES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}
	for _, o := range strings.Split(get("MOIM_ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	for _, r := range strings.Split(get("MOIM_ROLES"), ",") {
		switch r = strings.TrimSpace(r); r {
		case "api", "hub", "batcher":
			cfg.Roles = append(cfg.Roles, r)
		case "":
		default:
			return Config{}, &configError{"MOIM_ROLES", "unknown role " + strconv.Quote(r) + "; use api, hub, batcher"}
		}
	}
	if len(cfg.Roles) == 0 {
		return Config{}, &configError{"MOIM_ROLES", "name at least one of api, hub, batcher"}
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		return Config{}, err
	}
	if cfg.LogSync != store.SyncFull && cfg.LogSync != store.SyncNormal {
		return Config{}, &configError{"MOIM_LOG_SYNC", "must be full or normal"}
	}
	if cfg.InviteRule != "contacts" && cfg.InviteRule != "anyone" {
		return Config{}, &configError{"MOIM_INVITE_RULE", "must be contacts or anyone"}
	}
	if cfg.MongoURI != "" && cfg.RedisURL == "" {
		return Config{}, &configError{"MOIM_MONGO_URI", "needs MOIM_REDIS_URL: nodes store messages in MongoDB through Redis; a node without Redis keeps them in SQLite in its data directory"}
	}
	if cfg.DataDir == "" {
		return Config{}, &configError{"MOIM_DATA_DIR", "must not be empty"}
	}
	if cfg.RedisPrefix == "" || strings.ContainsAny(cfg.RedisPrefix, "{} ") {
		return Config{}, &configError{"MOIM_REDIS_PREFIX", "must be non-empty without braces or spaces"}
	}
	if cfg.NodeID == "" {
		if cfg.NodeID, err = os.Hostname(); err != nil || cfg.NodeID == "" {
			cfg.NodeID = "moim"
		}
	}
	if cfg.JWTSecret != "" && len(cfg.JWTSecret) < 32 {
		return Config{}, &configError{"MOIM_JWT_SECRET", "must be at least 32 bytes"}
	}
	switch cfg.Payments {
	case "":
		cfg.Payments = "off"
		if cfg.Embedded() {
			cfg.Payments = "sandbox"
		}
	case "sandbox", "off":
	case "toss":
		if cfg.TossSecretKey == "" || cfg.TossClientKey == "" {
			return Config{}, &configError{"MOIM_PAYMENTS", "toss needs MOIM_TOSS_SECRET_KEY and MOIM_TOSS_CLIENT_KEY"}
		}
		if !strings.HasPrefix(cfg.TossAPI, "https://") && !strings.HasPrefix(cfg.TossAPI, "http://") {
			return Config{}, &configError{"MOIM_TOSS_API", "must be an http(s) origin"}
		}
	default:
		return Config{}, &configError{"MOIM_PAYMENTS", "unknown provider " + strconv.Quote(cfg.Payments) + "; use sandbox, toss or off"}
	}
	if cfg.JWTSecret == "" && !cfg.Embedded() {
		return Config{}, &configError{"MOIM_JWT_SECRET", "is required when any backend is external (every node must share it); set it to 32 or more random bytes"}
	}
	return cfg, nil
}

// envOrFile is the variable name, or the contents of the file named by
// name+"_FILE" (one trailing newline dropped): Docker and Kubernetes
// secrets arrive as files, and a secret in a plain variable shows in
// `docker inspect` and the process environment.
func envOrFile(name string, getenv func(string) string) (string, error) {
	v, path := getenv(name), getenv(name+"_FILE")
	switch {
	case path == "":
		return v, nil
	case v != "":
		return "", &configError{name, "set either " + name + " or " + name + "_FILE, not both"}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &configError{name + "_FILE", err.Error()}
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

func (c Config) hasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Embedded reports whether every backend runs in-process.
func (c Config) Embedded() bool {
	return c.RedisURL == "" && c.MongoURI == "" && c.MySQLDSN == ""
}

func positiveDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &configError{name, fmt.Sprintf("%q is not a positive duration such as 15s or 24h", s)}
	}
	return d, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, &configError{"MOIM_LOG_LEVEL", "must be debug, info, warn or error"}
	}
	return l, nil
}
