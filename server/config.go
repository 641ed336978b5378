package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"moim/limit"
	"moim/store"
)

// Config is every setting of a node. Each field is filled by one row of
// the settings table (Config.settings): from an environment variable (or
// the file its _FILE twin names), overridden by the flag of the same name
// (MOIM_REDIS_URL ↔ -redis-url).
type Config struct {
	// Addr is where REST, WebSocket and metrics listen. Default ":8080":
	// every interface, on the port containers and proxies expect.
	Addr string
	// DataDir holds the embedded backends' files and the generated JWT
	// secret. Default "./data", beside where the node is started.
	DataDir string
	// RedisURL is redis://[user:pass@]host:port/db; empty runs the
	// single-node engine in process (live state in memory, every message
	// committed to DataDir/messages.db before its ack): one node only.
	RedisURL string
	// RedisPrefix starts every Redis key, so several deployments (or test
	// runs) can share one Redis. Default "moim": one deployment per Redis
	// needs nothing more.
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
	// MySQLDSN is go-sql-driver's DSN (user:pass@tcp(host:3306)/moim).
	// Default empty: an SQLite file in DataDir, so a first node needs
	// nothing installed.
	MySQLDSN string
	// JWTSecret signs login tokens (at least 32 bytes). No default: it is
	// required when any backend is external, since every node must share
	// it; in fully embedded mode one is generated once and kept in DataDir.
	JWTSecret string
	// TokenTTL is how long a login lasts. Default 24h: a day's use
	// without signing in again, short enough that a leaked token expires.
	TokenTTL time.Duration
	// NodeID names this node in logs, metrics and Redis. Default: the
	// hostname, which containers and VMs already make unique.
	NodeID string
	// BcryptCost hashes passwords, room passwords and wallet PINs.
	// Default 10 (about 50 ms a hash); load tests that create thousands
	// of users set 4, the minimum.
	BcryptCost int
	// StreamShards is how many persistence streams (and hash-tag groups of
	// room keys) Redis holds. Default 16: enough to spread over a Redis
	// Cluster's masters and over several batchers. Fixed once data exists.
	StreamShards int
	// AllowedOrigins are the browser origins that may open a WebSocket,
	// comma-separated. Default: the request's own host, so only the pages
	// this node serves connect; in fully embedded mode any origin, for a
	// developer's pages served from elsewhere.
	AllowedOrigins []string
	// SendRate and SendBurst are each WebSocket's token bucket for sends
	// and typing. Default 20/s with bursts of 40: far above a person
	// typing, low enough that one client cannot flood a room.
	SendRate  float64
	SendBurst int
	// BusyLag is the lag past which a node refuses new sends with error
	// busy and retry_after_ms instead of queueing them (hub/admission.go).
	// Default 250ms: about 25× the delivery p99 of a node within its
	// capacity, so it is never reached in ordinary use, and low enough
	// that an acknowledged message's delivery stays well under a second
	// past capacity (docs/BENCHMARKS.md).
	BusyLag time.Duration
	// Roles restricts what this node does: any of api (REST), hub
	// (WebSocket) and batcher (drains Redis into the store). Default all
	// three; operators may split them across processes.
	Roles []string
	// ClaimIdle is how long a persistence entry may stay pending under a
	// batcher before another claims it. Default 30s: far above a normal
	// batch write, short enough that a dead node's backlog moves soon.
	ClaimIdle time.Duration
	// DedupeWindow is how long Redis at least remembers each sent (room,
	// user, cid); it forgets it within two. Default 10m: a client's
	// ordinary retries come within it, and the cids (about 55 bytes each)
	// fit in memory at thousands of messages a second; a resend marked as
	// one is looked up in the message store past it.
	DedupeWindow time.Duration
	// RedisLinger is how long, at most, a node's pipeline of sends to
	// Redis waits for more sends while they come at 2,500 a second or
	// more. Default 2ms: at 5,000 msg/s on 2 cores it took a fifth off
	// redis-server's CPU per delivery (docs/BENCHMARKS.md, session 45),
	// the p99 the same, and slower rates never wait.
	RedisLinger time.Duration
	// TokenCheck is how often a node checks the token of every open
	// WebSocket again, to close those of deleted users and expired
	// tokens. Default 1m: one SQL query per token a minute; logouts and
	// password changes close their sockets at once without waiting for it.
	TokenCheck time.Duration
	// MirrorCheck is how often a node checks that Redis still holds the
	// membership mirror. Default 5s: a Redis that lost its data (restart
	// without persistence) is refilled within seconds, for one EXISTS.
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
	// (test_… or live_…); no default, both required with Payments toss.
	// TossAPI is Toss's API origin, default https://api.tosspayments.com,
	// changed only to point at a stand-in.
	TossSecretKey, TossClientKey, TossAPI string
	// TossSDK is the URL of Toss's JS SDK the web client loads for
	// checkout; its origin joins the page's Content-Security-Policy only
	// with Payments toss. Default payments.TossSDK; a browser test points
	// it at a local stand-in.
	TossSDK string
	// AttachmentQuota caps the megabytes of uploads (files, photos and
	// their thumbnails) one room keeps. Default 500: a year of a club's
	// receipts and photos at a few MB each, small enough that one room
	// cannot fill a node's disk or GridFS.
	AttachmentQuota int64
	// LogLevel is debug, info, warn or error. Default info: start-up,
	// backend trouble and failovers, not every request.
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
	// SignupLimit caps sign-ups per client address. Default 20/1h: a club
	// signing up together fits; a script minting accounts does not.
	SignupLimit limit.Rule
	// SendLimit caps each user's sends and edits over all their sockets,
	// REST calls and nodes. Default 200/10s: one socket at its full
	// MOIM_SEND_RATE, however many sockets the user opens.
	SendLimit limit.Rule
	// SyncLimit caps the messages sync, REST history and search return to
	// each user (plus one per frame or request). Default 20000/1m: a full page for 40 rooms after a long
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
	// IOURing writes each event to its room's sockets on this node in one
	// io_uring call rather than a write(2) per socket. Default true: on
	// the project's VM a node on Redis spent 14 % less CPU per delivery
	// (docs/BENCHMARKS.md, "Session 41"); where the kernel refuses
	// io_uring (seccomp, kernel.io_uring_disabled) the node writes one by
	// one by itself, and false forces that, to compare or to rule it out.
	IOURing bool
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

// setting is one row of the settings table: the only place a setting's
// name, default and meaning are written. loadConfig derives the
// environment variable, its _FILE twin, the flag and -h from it, and
// TestREADMEConfigTable fails when README's table says otherwise.
type setting struct {
	// env is the variable; the flag is its tail in lower case with dashes
	// (MOIM_REDIS_URL ↔ -redis-url).
	env string
	// def is the value when neither the variable nor the flag is given.
	def string
	// unset says what the default means when the value alone does not
	// ("hostname" for an empty MOIM_NODE_ID); README's Default column.
	unset string
	// doc is README's Meaning column (Markdown); -h shows it too.
	doc string
	// set checks the value as given (after env, file and flag) and stores
	// it in its Config field; an error names the problem, not the setting.
	set func(v string) error
}

// settings is the table of every setting, bound to c's fields, in
// README's order.
//
// To add a setting: add its field to Config (a comment with the default
// and why), add one row here (name, default, words for an unobvious
// default, README's meaning, and a parser from the kinds below it), then
// run `go test ./server -run TestREADMEConfigTable -update-readme` to write
// its README row. Checks that involve several settings go in Config.check.
func (c *Config) settings() []setting {
	return []setting{
		{"MOIM_ADDR", ":8080", "", "Listen address for REST, WebSocket and metrics.", text(&c.Addr)},
		{"MOIM_DATA_DIR", "./data", "", "The node's own SQLite files (`messages.db` and its journals `messages.journal` and `messages.journal.1`, `moim.db`), uploads (`attachments/`) when there is no MongoDB, and the generated JWT secret.", required(&c.DataDir)},
		{"MOIM_REDIS_URL", "", "empty = single-node engine", "`redis://[user:pass@]host:6379/0` for one Redis; `redis+cluster://[user:pass@]host1:7000,host2:7001,host3:7002/` for a Redis Cluster (`rediss://`, `rediss+cluster://` with TLS). On a cluster, room delivery uses sharded pub/sub.", text(&c.RedisURL)},
		{"MOIM_REDIS_PREFIX", "moim", "", "Prefix of every Redis key (lets deployments share a Redis).", keyPrefix(&c.RedisPrefix)},
		{"MOIM_MONGO_URI", "", "empty = SQLite in the data directory", "`mongodb://host:27017/moim`; the path names the database (default `moim`). Needs `MOIM_REDIS_URL` (the batcher drains Redis into it); without it a node keeps messages in `messages.db`, which only one node can use.", text(&c.MongoURI)},
		{"MOIM_LOG_SYNC", "normal", "", "How the SQLite message log makes a commit durable. `normal`: the commit reaches the OS before the ack, so an ack survives the process being killed or crashing; the log is fsynced at each checkpoint (every few MB), so a power cut can lose the last seconds. `full`: every (group) commit is fsynced before its acks, so they survive a power cut too, at the cost of an fsync per commit (docs/BENCHMARKS.md).", oneOf(&c.LogSync, store.SyncNormal, store.SyncFull)},
		{"MOIM_MYSQL_DSN", "", "empty = SQLite", "`user:pass@tcp(host:3306)/moim` (MySQL 8 or MariaDB 10.11).", text(&c.MySQLDSN)},
		{"MOIM_JWT_SECRET", "", "generated when nothing is configured", "At least 32 bytes. Required (exit 2 without it) when any backend is external, since every node must share it.", secret(&c.JWTSecret, 32)},
		{"MOIM_TOKEN_TTL", "24h", "", "How long a login token lasts.", duration(&c.TokenTTL)},
		{"MOIM_NODE_ID", "", "hostname", "This node's name in logs, metrics and Redis (its connections are `moim-<name>` in `CLIENT LIST`, bytes Redis refuses in a name as `_`, unless `MOIM_REDIS_URL` sets `client_name`).", orHostname(&c.NodeID)},
		{"MOIM_BCRYPT_COST", "10", "", "Hashing cost of passwords, room passwords and wallet PINs, 4–31; load tests use 4.", integer(&c.BcryptCost, 4, 31)},
		{"MOIM_STREAM_SHARDS", "16", "", "Persistence stream shards (and hash-tag groups of room keys) in Redis; fixed once data exists.", integer(&c.StreamShards, 1, 1024)},
		{"MOIM_ALLOWED_ORIGINS", "", "same host; any when nothing is configured", "Comma-separated browser origins allowed to open `/ws`.", list(&c.AllowedOrigins)},
		{"MOIM_SEND_RATE", "20", "", "Messages per second one WebSocket may send (token bucket).", positive(&c.SendRate)},
		{"MOIM_SEND_BURST", "40", "", "Burst of that bucket. Load tests raise both.", integer(&c.SendBurst, 1, math.MaxInt)},
		{"MOIM_BUSY_LAG", "250ms", "", "Overload: while this node's lag (a message's acceptance to its delivery, a send's wait for its ack, or the shortest wait of a readable connection for a worker, worst of the last 100 ms; `moim_hub_lag_seconds`) is past this, a share of new sends (halved every 100 ms while it stays past) is refused at once with error `busy` and `retry_after_ms` (REST: 503 with `Retry-After`) and nothing of them is stored; clients resend the same cid later (docs/PROTOCOL.md). 250ms is far above a node within its capacity; past it (8,000 and 10,000 msg/s on 2 cores, docs/BENCHMARKS.md, session 31) acknowledged messages were delivered at p99 448 and 747 ms.", duration(&c.BusyLag)},
		{"MOIM_ROLES", "api,hub,batcher", "", "What this node runs: REST (`api`), WebSocket (`hub`), the Redis→MongoDB batcher (`batcher`).", listOf(&c.Roles, "api", "hub", "batcher")},
		{"MOIM_CLAIM_IDLE", "30s", "", "How long a batcher's unstored entries wait before another batcher claims them.", duration(&c.ClaimIdle)},
		{"MOIM_DEDUPE_WINDOW", "10m", "", "How long Redis remembers each sent cid, so a resend gets the original seq; a resend marked `\"resend\": true` whose cid Redis forgot is looked up in the message store (docs/PROTOCOL.md). Redis keeps a sent cid for one to two windows, about 55 bytes each: 10m at 1,000 msg/s is 33–66 MB.", duration(&c.DedupeWindow)},
		{"MOIM_REDIS_LINGER", "2ms", "", "Redis path: while a node's sends come at 2,500 a second or more, its round trips to Redis start at most this often (unless 32 sends wait), since Redis spends much of a send's CPU per round trip; `0` sends what is queued at once; at most 100ms. At 5,000 msg/s on 2 cores 2ms took a fifth off redis-server's CPU per delivery, the p99 the same (docs/BENCHMARKS.md, session 45); slower rates never wait.", shortWait(&c.RedisLinger, 100*time.Millisecond)},
		{"MOIM_TOKEN_CHECK", "1m", "", "How often open WebSockets' tokens are read again, closing those of deleted users and expired tokens (logouts and password changes close theirs at once).", duration(&c.TokenCheck)},
		{"MOIM_INVITE_RULE", "contacts", "", "Who room creation's `member_ids` and `POST /api/rooms/{id}/members` add at once. `contacts`: users who have the inviter among their contacts; everyone else gets an invitation to accept or decline. `anyone`: everyone is added (load tests that build rooms of strangers: k6, `scripts/loadgen`, `scripts/chaos`).", oneOf(&c.InviteRule, "contacts", "anyone")},
		{"MOIM_MAX_AMOUNT", "100000000", "", "Largest single money transfer, in won.", integer(&c.MaxAmount, 1, math.MaxInt64)},
		{"MOIM_MIRROR_CHECK", "5s", "", "How often a node checks that Redis still holds the membership mirror (rebuilt from SQL if not).", duration(&c.MirrorCheck)},
		{"MOIM_PUBSUB_PROBE", "5s", "", "How often a node publishes to itself on every pub/sub shard; a shard that stays silent for three probes is resubscribed (`moim_hub_pubsub_resubscribes_total`) and fails `/readyz` meanwhile.", duration(&c.PubSubProbe)},
		{"MOIM_SCHEDULE_TICK", "10s", "", "How often a node runs due auto-pay orders and due-day dues reminders (every API node does; each run happens once).", duration(&c.ScheduleTick)},
		{"MOIM_PAYMENTS", "", "`sandbox` embedded, else `off`", "Payment provider for top-ups and withdrawals: `sandbox` (test money, confirmed at once), `toss` (Toss Payments) or `off` (503 `payments_not_configured`). Set it explicitly whenever any backend is external.", oneOf(&c.Payments, "", "sandbox", "toss", "off")},
		{"MOIM_TOSS_SECRET_KEY", "", "", "Toss Payments secret key (`test_sk_…`/`live_sk_…`); `_FILE` works. Required with `toss`.", secret(&c.TossSecretKey, 0)},
		{"MOIM_TOSS_CLIENT_KEY", "", "", "Toss Payments client key (`test_ck_…`/`live_ck_…`), handed to the browser's payment widget. Required with `toss`.", text(&c.TossClientKey)},
		{"MOIM_TOSS_API", "https://api.tosspayments.com", "", "Toss Payments API origin (tests point it at a stand-in).", origin(&c.TossAPI)},
		{"MOIM_TOSS_SDK", "https://js.tosspayments.com/v2/standard", "", "Toss Payments JS SDK the web client loads for checkout; with `toss` its origin (only then) is allowed by the page's Content-Security-Policy (tests point it at a stand-in).", text(&c.TossSDK)},
		{"MOIM_ATTACHMENT_QUOTA", "500", "", "Megabytes of uploads (files, photos, thumbnails) one room may keep; past it uploads get 413 `quota_exceeded`. Bytes live in GridFS with `MOIM_MONGO_URI`, else in `DATA_DIR/attachments`.", integer(&c.AttachmentQuota, 1, 1<<20)},
		{"MOIM_LOG_LEVEL", "info", "", "`debug`, `info`, `warn`, `error`.", level(&c.LogLevel)},
		{"MOIM_LOGIN_LIMIT", "10/10m", "", "Failed logins per username from one address, and from anywhere for addresses that have failed it too (count/window, or `off`); past it those attempts get 429 with `Retry-After` until the window ends. A stranger's failures never lock the owner out.", rule(&c.LoginLimit)},
		{"MOIM_LOGIN_ADDRESS_LIMIT", "50/10m", "", "Failed logins per client address.", rule(&c.LoginAddressLimit)},
		{"MOIM_JOIN_LIMIT", "10/10m", "", "Wrong room passwords and refused invite-link joins per user (any room).", rule(&c.JoinLimit)},
		{"MOIM_JOIN_ADDRESS_LIMIT", "50/10m", "", "Wrong room passwords per client address.", rule(&c.JoinAddressLimit)},
		{"MOIM_SIGNUP_LIMIT", "20/1h", "", "Sign-ups per client address. Load tests from one host set `off`.", rule(&c.SignupLimit)},
		{"MOIM_SEND_LIMIT", "200/10s", "", "Sends and edits per user over all their sockets, REST and nodes (count/window, or `off`). Load tests set `off`.", rule(&c.SendLimit)},
		{"MOIM_SYNC_LIMIT", "20000/1m", "", "Messages `sync`, REST history and search return per user (count/window, or `off`).", rule(&c.SyncLimit)},
		{"MOIM_EVENT_LIMIT", "120/1m", "", "`read` and `typing` frames per user (count/window, or `off`).", rule(&c.EventLimit)},
		{"MOIM_USER_SEARCH_LIMIT", "30/1m", "", "User searches (`GET /api/users/search`) per user.", rule(&c.UserSearchLimit)},
		{"MOIM_UPGRADE_LIMIT", "120/1m", "", "WebSocket upgrades per client address (429 before the handshake). Load tests from one host set `off`.", rule(&c.UpgradeLimit)},
		{"MOIM_MAX_CONNS", "auto", "", "Most WebSocket connections one node holds; past it upgrades get 503 with `Retry-After` and `/readyz` reports the node full. `auto` is the open-file limit less a tenth (at least 256) kept for Redis, SQL, the store and files.", autoOrCount(&c.MaxConns)},
		{"MOIM_TRUSTED_PROXIES", "", "(none)", "Load balancers (IPs or CIDRs) whose `X-Forwarded-For` names the client address for these limits; others' headers are ignored.", list(&c.TrustedProxies)},
		{"MOIM_IO_URING", "true", "", "Write each message to a room's sockets on this node in one io_uring system call instead of one `write(2)` per socket (docs/ARCHITECTURE.md, \"One system call per broadcast\"). Where the kernel refuses io_uring (a seccomp profile, `kernel.io_uring_disabled`) the node logs it once and writes one by one; `false` forces that.", boolean(&c.IOURing)},
		{"MOIM_PPROF_ADDR", "", "(off)", "Serve Go's `/debug/pprof` profiles on this address (a listener of its own, e.g. `127.0.0.1:6060`); never on the public port.", text(&c.PprofAddr)},
		{"MOIM_STARTUP_TIMEOUT", "15s", "", "How long start-up retries an unreachable backend.", duration(&c.StartupTimeout)},
		{"MOIM_VAPID_PUBLIC_KEY", "", "(generated)", "Web Push VAPID public key, base64url P-256 (as `npx web-push generate-vapid-keys` prints it). Unset: a pair is generated on first start and kept in `DATA_DIR/vapid.json`, which suits one node; several nodes must share one pair.", text(&c.VAPIDPublicKey)},
		{"MOIM_VAPID_PRIVATE_KEY", "", "(generated)", "Its private key, with `MOIM_VAPID_PUBLIC_KEY` (both or neither; `_FILE` works).", secret(&c.VAPIDPrivateKey, 0)},
		{"MOIM_VAPID_SUBJECT", "mailto:admin@localhost", "", "The contact push services see in VAPID tokens (`mailto:` or `https:`); name your own.", text(&c.VAPIDSubject)},
		{"MOIM_PUSH_WINDOW", "5s", "", "How long a room's messages are gathered into one push per away member (docs/PROTOCOL.md, section 9).", duration(&c.PushWindow)},
		{"MOIM_PUSH_LOOPBACK", "false", "", "Allow plain-http push endpoints on loopback. Tests only: real endpoints must be https on public addresses.", boolean(&c.PushLoopback)},
	}
}

// flagName is the flag twin of an environment variable: MOIM_REDIS_URL ↔
// redis-url.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "MOIM_")), "_", "-")
}

// usage is a setting's line in -h: its meaning without Markdown's
// backticks (the flag package would take a quoted word for the value's
// name), the variable, and the default in words when the value is empty.
func (s setting) usage() string {
	u := strings.ReplaceAll(s.doc, "`", "")
	if s.unset != "" && s.def == "" {
		u += " (default: " + strings.ReplaceAll(s.unset, "`", "") + ")"
	}
	return u + " ($" + s.env + ")"
}

// configError is a setting that cannot be used; the node exits with 2.
type configError struct {
	setting string
	msg     string
}

func (e *configError) Error() string { return e.setting + ": " + e.msg }

// loadConfig reads each setting from its flag in args, else its variable
// (or _FILE) through getenv, else its default; then checks the settings
// that depend on each other.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var cfg Config
	table := cfg.settings()
	fs := flag.NewFlagSet("moim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := make([]*string, len(table))
	for i, s := range table {
		flags[i] = fs.String(flagName(s.env), s.def, s.usage())
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, &configError{"flags", err.Error()}
	}
	if fs.NArg() > 0 {
		return Config{}, &configError{"flags", "unexpected argument " + strconv.Quote(fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for i, s := range table {
		v, err := envOrFile(s.env, getenv)
		if err != nil {
			return Config{}, err
		}
		if v == "" || given[flagName(s.env)] {
			v = *flags[i]
		}
		if err := s.set(v); err != nil {
			return Config{}, &configError{s.env, err.Error()}
		}
	}
	if err := cfg.check(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// check holds the rules that involve more than one setting, and the
// defaults that depend on others (Payments).
func (c *Config) check() error {
	if c.MongoURI != "" && c.RedisURL == "" {
		return &configError{"MOIM_MONGO_URI", "needs MOIM_REDIS_URL: nodes store messages in MongoDB through Redis; a node without Redis keeps them in SQLite in its data directory"}
	}
	switch c.Payments {
	case "":
		c.Payments = "off"
		if c.Embedded() {
			c.Payments = "sandbox"
		}
	case "toss":
		if c.TossSecretKey == "" || c.TossClientKey == "" {
			return &configError{"MOIM_PAYMENTS", "toss needs MOIM_TOSS_SECRET_KEY and MOIM_TOSS_CLIENT_KEY"}
		}
		if !strings.HasPrefix(c.TossAPI, "https://") && !strings.HasPrefix(c.TossAPI, "http://") {
			return &configError{"MOIM_TOSS_API", "must be an http(s) origin"}
		}
		if c.checkoutOrigin() == "" {
			return &configError{"MOIM_TOSS_SDK", "must be an http(s) URL"}
		}
	}
	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		return &configError{"MOIM_VAPID_PRIVATE_KEY", "set both MOIM_VAPID_PUBLIC_KEY and MOIM_VAPID_PRIVATE_KEY, or neither"}
	}
	if !strings.HasPrefix(c.VAPIDSubject, "mailto:") && !strings.HasPrefix(c.VAPIDSubject, "https://") {
		return &configError{"MOIM_VAPID_SUBJECT", "must be a mailto: or https: URL"}
	}
	if c.JWTSecret == "" && !c.Embedded() {
		return &configError{"MOIM_JWT_SECRET", "is required when any backend is external (every node must share it); set it to 32 or more random bytes"}
	}
	return nil
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
	return slices.Contains(c.Roles, role)
}

// Embedded reports whether every backend runs in-process.
func (c Config) Embedded() bool {
	return c.RedisURL == "" && c.MongoURI == "" && c.MySQLDSN == ""
}

// The kinds of setting: each parses a value (surrounding spaces dropped,
// except for secrets, which keep their bytes) into its field.

func text(p *string) func(string) error {
	return func(v string) error { *p = strings.TrimSpace(v); return nil }
}

func required(p *string) func(string) error {
	return func(v string) error {
		if *p = strings.TrimSpace(v); *p == "" {
			return errors.New("must not be empty")
		}
		return nil
	}
}

// secret keeps the value as given: a key's spaces are part of it.
func secret(p *string, minLen int) func(string) error {
	return func(v string) error {
		if v != "" && len(v) < minLen {
			return fmt.Errorf("must be at least %d bytes", minLen)
		}
		*p = v
		return nil
	}
}

// oneOf takes one of options, in any case; "" is allowed only when it is
// one of them (a default decided by Config.check).
func oneOf[T ~string](p *T, options ...T) func(string) error {
	return func(v string) error {
		t := T(strings.ToLower(strings.TrimSpace(v)))
		if !slices.Contains(options, t) {
			return errors.New("must be " + orList(options))
		}
		*p = t
		return nil
	}
}

// orList is "a, b or c" of the non-empty options.
func orList[T ~string](options []T) string {
	var names []string
	for _, o := range options {
		if o != "" {
			names = append(names, string(o))
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func duration(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 15s or 24h", v)
		}
		*p = d
		return nil
	}
}

// shortWait is a duration from 0 (none) to max.
func shortWait(p *time.Duration, max time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 || d > max {
			return fmt.Errorf("%q is not a duration from 0 to %s such as 2ms", v, max)
		}
		*p = d
		return nil
	}
}

func integer[T int | int64](p *T, lo, hi T) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || T(n) < lo || T(n) > hi || int64(T(n)) != n {
			if int64(hi) == math.MaxInt64 || int64(hi) == math.MaxInt {
				return fmt.Errorf("must be a whole number of at least %d", lo)
			}
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		*p = T(n)
		return nil
	}
}

func boolean(p *bool) func(string) error {
	return func(v string) (err error) {
		if *p, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return errors.New("must be true or false")
		}
		return nil
	}
}

func positive(p *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return errors.New("must be a positive number")
		}
		*p = f
		return nil
	}
}

// autoOrCount is a positive count, or auto (0: the node decides).
func autoOrCount(p *int) func(string) error {
	count := integer(p, 1, math.MaxInt)
	return func(v string) error {
		if strings.TrimSpace(v) == "auto" {
			*p = 0
			return nil
		}
		if count(v) != nil {
			return errors.New("must be a positive integer or auto")
		}
		return nil
	}
}

func rule(p *limit.Rule) func(string) error {
	return func(v string) (err error) {
		*p, err = limit.ParseRule(strings.TrimSpace(v))
		return err
	}
}

// list is comma-separated, blanks dropped.
func list(p *[]string) func(string) error {
	return func(v string) error {
		*p = nil
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*p = append(*p, item)
			}
		}
		return nil
	}
}

// listOf is a list of at least one of options.
func listOf(p *[]string, options ...string) func(string) error {
	parse := list(p)
	return func(v string) error {
		_ = parse(v)
		for _, item := range *p {
			if !slices.Contains(options, item) {
				return fmt.Errorf("unknown %q; use %s", item, strings.Join(options, ", "))
			}
		}
		if len(*p) == 0 {
			return errors.New("name at least one of " + strings.Join(options, ", "))
		}
		return nil
	}
}

// keyPrefix starts Redis keys: braces would change a cluster's hash slot
// and spaces break the Lua scripts' key lists.
func keyPrefix(p *string) func(string) error {
	return func(v string) error {
		if *p = strings.TrimSpace(v); *p == "" || strings.ContainsAny(*p, "{} ") {
			return errors.New("must be non-empty without braces or spaces")
		}
		return nil
	}
}

func orHostname(p *string) func(string) error {
	return func(v string) error {
		if *p = strings.TrimSpace(v); *p == "" {
			if h, err := os.Hostname(); err == nil && h != "" {
				*p = h
			} else {
				*p = "moim"
			}
		}
		return nil
	}
}

// checkoutOrigin is the origin of the payment provider's checkout script
// the web client loads: Toss's SDK with Payments toss, else none.
func (c *Config) checkoutOrigin() string {
	if c.Payments != "toss" {
		return ""
	}
	u, err := url.Parse(c.TossSDK)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// origin is an http(s) origin without a trailing slash; Config.check
// requires the scheme only when the provider is used.
func origin(p *string) func(string) error {
	return func(v string) error { *p = strings.TrimSuffix(strings.TrimSpace(v), "/"); return nil }
}

func level(p *string) func(string) error {
	return func(v string) error {
		s := strings.ToLower(strings.TrimSpace(v))
		if _, err := parseLevel(s); err != nil {
			return errors.New("must be debug, info, warn or error")
		}
		*p = s
		return nil
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	return l, l.UnmarshalText([]byte(s))
}
