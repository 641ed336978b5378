// Command server runs one Moim node: REST API, WebSocket hub and metrics on
// one port. With no backend URLs it runs its own engine in the process,
// with SQLite for everything durable, so `go run ./server` works with
// nothing but Go installed.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"moim/accounts"
	"moim/api"
	"moim/attachments"
	"moim/chatlog"
	"moim/fees"
	"moim/hub"
	"moim/limit"
	"moim/payments"
	"moim/push"
	"moim/rooms"
	"moim/sqldb"
	"moim/store"
	"moim/web"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is main with its inputs made explicit; it returns the exit code:
// 0 after a clean shutdown, 2 for bad configuration, 1 otherwise.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if slices.Contains(args, healthcheckFlag) {
		return runHealthcheck(args, getenv, stderr)
	}
	stderr = &lockedWriter{w: stderr}
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "moim:", err)
		return 2
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("node", cfg.NodeID)
	redis.SetLogger(redisLogger{log.With("component", "redis")})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := startNode(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "moim:", err)
		var ce *configError
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		n.close()
		fmt.Fprintln(stderr, "moim: MOIM_ADDR:", err)
		return 2
	}
	log.Info("listening", "addr", ln.Addr().String())
	if cfg.PprofAddr != "" {
		_, stopProfiles, err := serveProfiles(cfg.PprofAddr, log)
		if err != nil {
			n.close()
			fmt.Fprintln(stderr, "moim: MOIM_PPROF_ADDR:", err)
			return 2
		}
		defer stopProfiles()
	}
	if err := n.serve(ctx, ln); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// node is one running Moim server.
type node struct {
	cfg      Config
	log      *slog.Logger
	backends *backends
	app      *fiber.App
	hub      *hub.Hub
	batcher  *store.Batcher
	// stopBatcher ends the batcher after it stored what it had read.
	stopBatcher func()
	stopWatch   func()
	stopFees    func()
	// money is kept so tests can move its scheduler's clock.
	money *fees.Fees
	// push is kept so tests can see subscriptions come and go.
	push *push.Notifier
	// acceptErrors counts temporary accept failures (steadyListener).
	acceptErrors prometheus.Counter
}

// startNode opens the backends, migrates the schema and builds the HTTP
// app; it does not listen yet.
func startNode(ctx context.Context, cfg Config, log *slog.Logger) (*node, error) {
	b, err := openBackends(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	n := &node{cfg: cfg, log: log, backends: b}
	if err := n.build(ctx); err != nil {
		b.close()
		return nil, err
	}
	return n, nil
}

func (n *node) build(ctx context.Context) error {
	secret, err := jwtSecret(n.cfg)
	if err != nil {
		return err
	}
	tokens := accounts.NewTokens(secret, n.cfg.TokenTTL)
	lim, tickets := limit.NewMemory(), accounts.NewMemoryTickets()
	if n.backends.redis != nil {
		lim = limit.NewRedis(n.backends.redis, n.cfg.RedisPrefix)
		tickets = accounts.NewRedisTickets(n.backends.redis, n.cfg.RedisPrefix)
	}
	tokens.UseTickets(tickets)
	acc, err := accounts.New(n.backends.sql, lim, accounts.Limits{
		LoginPerUser: n.cfg.LoginLimit, LoginPerAddress: n.cfg.LoginAddressLimit, SignupPerAddress: n.cfg.SignupLimit,
		SearchPerUser: n.cfg.UserSearchLimit,
	}, tokens, n.cfg.BcryptCost)
	if err != nil {
		return err
	}
	keys := chatlog.Keys{Prefix: n.cfg.RedisPrefix, Shards: n.cfg.StreamShards}
	var mirror rooms.Mirror
	var members *rooms.MemoryMirror
	if n.backends.redis != nil {
		mirror = rooms.NewRedisMirror(n.backends.redis, keys)
	} else {
		members = rooms.NewMemoryMirror()
		mirror = members
	}
	rms := rooms.New(n.backends.sql, mirror, acc, n.cfg.BcryptCost)
	if n.cfg.InviteRule == "anyone" {
		rms.AddAnyone()
	}
	rms.LimitJoins(lim, rooms.JoinLimits{PerUser: n.cfg.JoinLimit, PerAddress: n.cfg.JoinAddressLimit})
	reg := newRegistry()
	n.acceptErrors = newAcceptErrors(reg)
	money := fees.New(n.backends.sql, directory{acc, rms}, n.cfg.MaxAmount, n.cfg.provider(), reg)
	money.UsePINCost(n.cfg.BcryptCost)
	files, err := n.attachments(directory{acc, rms})
	if err != nil {
		return err
	}
	if n.push, err = n.newNotifier(reg); err != nil {
		return err
	}
	if err := sqldb.Migrating(ctx, n.backends.sql, n.cfg.StartupTimeout, func() error {
		for _, migrate := range []func() error{acc.Migrate, money.Migrate, rms.Migrate, files.Migrate, n.push.Migrate} {
			if err := migrate(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := n.rebuildMirror(ctx, mirror); err != nil {
		return err
	}
	var broker hub.Broker
	if n.backends.redis != nil {
		n.watchMirror(mirror)
		broker = hub.NewRedisBroker(n.backends.redis, keys, n.backends.msgs, hub.RedisConfig{Node: n.cfg.NodeID, DedupeTTL: n.cfg.DedupeWindow, Linger: n.cfg.RedisLinger})
		if n.cfg.hasRole("batcher") {
			n.startBatcher(keys, reg)
		}
	} else {
		// The engine gives seqs out itself: a clash is a bug, not a loss.
		n.backends.sqliteLog.SetConflictHandler(func(cs []store.Conflict) {
			n.log.Error("the message log refused messages under seqs it gave out; kept in its conflicts table", "err", &store.ConflictError{Conflicts: cs})
		})
		broker = hub.NewMemoryBroker(n.backends.sqliteLog, members, hub.MemoryConfig{})
	}
	n.hub, err = hub.New(hub.Config{
		NodeID:         n.cfg.NodeID,
		AllowedOrigins: n.cfg.AllowedOrigins,
		AnyOrigin:      n.cfg.Embedded() && len(n.cfg.AllowedOrigins) == 0,
		SendRate:       n.cfg.SendRate,
		SendBurst:      n.cfg.SendBurst,
		BusyLag:        n.cfg.BusyLag,
		PlainWrites:    !n.cfg.IOURing,
		TokenCheck:     n.cfg.TokenCheck,
		Budget:         hub.Budget{Limiter: lim, Send: n.cfg.SendLimit, Sync: n.cfg.SyncLimit, Events: n.cfg.EventLimit},
		ProbeInterval:  n.cfg.PubSubProbe,
		Upgrades:       n.upgradeSlots(),
	}, broker, directory{acc, rms}, n.backends.msgs, reg, n.log)
	if err != nil {
		return err
	}
	n.hub.UseAttachments(files)
	files.UseLive(n.hub)
	money.UseReceipts(files)
	// Every accepted message and every invitation may be pushed to
	// members who are away; the notifier never holds up either.
	n.hub.OnAccept(n.push.Accepted)
	if err := n.push.Start(n.hub); err != nil {
		return err
	}
	rms.Attach(pushingLive{n.hub, n.push})
	acc.OnTokensChanged(n.hub.TokensChanged)
	rms.OnMoney(roomMoney{money, n.log})
	n.money = money
	n.runFees(money)
	fc := fiber.Config{
		AppName: "moim",
		// Uploads get more (uploadLimit).
		BodyLimit:             64 << 10,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          api.ErrorHandler(n.log),
	}
	if len(n.cfg.TrustedProxies) > 0 {
		// c.IP() then reads the client from X-Forwarded-For, but only on
		// requests that come from these proxies.
		fc.ProxyHeader, fc.EnableTrustedProxyCheck, fc.TrustedProxies, fc.EnableIPValidation =
			fiber.HeaderXForwardedFor, true, n.cfg.TrustedProxies, true
	}
	app := fiber.New(fc)
	app.Use(newHTTPMetrics(reg).middleware)
	app.Use(recover.New())
	opsRoutes(app, n.checks(), reg)
	auth := tokens.Require()
	if n.cfg.hasRole("api") {
		r := app.Group("/api")
		acc.Routes(r, auth)
		rms.Routes(r, auth)
		rms.InvitationRoutes(r, auth)
		rms.NoticeRoutes(r, auth)
		rms.MuteRoutes(r, auth)
		n.push.Routes(r, auth, accounts.UserID)
		r.Get("/rooms/:id/presence", auth, n.hub.PresenceHandler(accounts.UserID))
		n.hub.MessageRoutes(r, auth, accounts.UserID)
		money.Routes(r, auth, accounts.UserID)
		files.Routes(r, auth, accounts.UserID)
		// The web client needs the API, so it is served where the API is.
		client, err := web.Load(n.cfg.checkoutOrigin())
		if err != nil {
			return err
		}
		client.Routes(app)
	}
	if n.cfg.hasRole("hub") {
		app.Get("/ws", n.connCap(), limit.PerAddress(lim, "upgrade", n.cfg.UpgradeLimit, "too many connections from your address"), n.hub.Gate(), tokens.RequireUpgrade(), n.hub.Handler(accounts.UserID, accounts.Token))
	}
	app.Server().HeaderReceived = uploadLimit
	// The hub owns upgraded connections; fasthttp must not close them.
	app.Server().KeepHijackedConns = true
	n.app = app
	return nil
}

// attachments keeps uploads' metadata in SQL and their bytes in GridFS
// when the node has MongoDB, else in DataDir/attachments.
func (n *node) attachments(rms attachments.Rooms) (*attachments.Attachments, error) {
	var blobs attachments.Blobs
	if n.backends.mongo != nil {
		blobs = attachments.NewGridFS(n.backends.mongo)
	} else {
		disk, err := attachments.NewDisk(filepath.Join(n.cfg.DataDir, "attachments"))
		if err != nil {
			return nil, &configError{"MOIM_DATA_DIR", err.Error()}
		}
		blobs = disk
	}
	return attachments.New(n.backends.sql, blobs, rms, n.cfg.AttachmentQuota<<20), nil
}

// uploadLimit raises the body limit for uploads alone, decided from the
// request line before any body is read: a little over
// attachments.MaxSize, for the multipart framing. Every other route keeps
// 64 KB, refused from the declared length.
func uploadLimit(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	path, _, _ := bytes.Cut(h.RequestURI(), []byte("?"))
	if h.IsPost() && bytes.HasPrefix(path, []byte("/api/rooms/")) && bytes.HasSuffix(path, []byte("/attachments")) {
		return fasthttp.RequestConfig{MaxRequestBodySize: attachments.MaxSize + 64<<10}
	}
	return fasthttp.RequestConfig{}
}

// provider is the configured payment provider; nil when payments are off.
func (c Config) provider() payments.Provider {
	switch c.Payments {
	case "sandbox":
		return payments.Sandbox{}
	case "toss":
		return payments.NewToss(c.TossSecretKey, c.TossClientKey, c.TossAPI).UseSDK(c.TossSDK)
	}
	return nil
}

// newNotifier builds the Web Push notifier with the configured VAPID
// pair, or the one kept in the data directory (generated on first start).
func (n *node) newNotifier(reg prometheus.Registerer) (*push.Notifier, error) {
	keys := push.Keys{Public: n.cfg.VAPIDPublicKey, Private: n.cfg.VAPIDPrivateKey}
	if keys.Public == "" {
		var err error
		if keys, err = push.LoadOrCreateKeys(n.cfg.DataDir); err != nil {
			return nil, &configError{"MOIM_DATA_DIR", err.Error()}
		}
		if !n.cfg.Embedded() {
			n.log.Info("push: VAPID keys come from this node's data directory; several nodes must share one pair (MOIM_VAPID_PUBLIC_KEY, MOIM_VAPID_PRIVATE_KEY)")
		}
	}
	p, err := push.New(push.Config{Keys: keys, Subject: n.cfg.VAPIDSubject, Window: n.cfg.PushWindow, AllowLoopback: n.cfg.PushLoopback},
		n.backends.sql, reg, n.log.With("component", "push"))
	if err != nil {
		return nil, &configError{"MOIM_VAPID_PRIVATE_KEY", err.Error()}
	}
	return p, nil
}

// pushingLive is the hub as rooms sees it, with invitations also pushed
// to invitees who are away.
type pushingLive struct {
	*hub.Hub
	push *push.Notifier
}

// Notify sends a live event and pushes it where the notifier words it.
func (l pushingLive) Notify(ctx context.Context, users []int64, event []byte) {
	l.Hub.Notify(ctx, users, event)
	l.push.Notify(users, event)
}

// roomMoney ties room deletions and departures to the fees module.
type roomMoney struct {
	*fees.Fees
	log *slog.Logger
}

// Departed cancels departed members' auto-pay. A failure is logged, not
// returned: the membership change is done, and an order left behind can
// only fail (announced), never move money.
func (m roomMoney) Departed(ctx context.Context, roomID int64, userIDs []int64, deleted bool) {
	if err := m.Fees.Departed(ctx, roomID, userIDs, deleted); err != nil {
		m.log.Warn("cancel auto-pay of departed members", "room", roomID, "err", err)
	}
}

// directory gives the hub what it needs from accounts and rooms.
type directory struct {
	acc *accounts.Accounts
	rms *rooms.Rooms
}

func (d directory) DisplayName(ctx context.Context, userID int64) (string, error) {
	u, err := d.acc.Get(ctx, userID)
	if err != nil {
		return "", err
	}
	return u.DisplayName, nil
}

func (d directory) DisplayNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	return d.acc.DisplayNames(ctx, ids)
}

func (d directory) Role(ctx context.Context, roomID, userID int64) (string, error) {
	role, _, err := d.rms.Role(ctx, roomID, userID)
	return role, err
}

func (d directory) IsAdmin(ctx context.Context, roomID, userID int64) (bool, error) {
	role, _, err := d.rms.Role(ctx, roomID, userID)
	if err != nil {
		return false, err
	}
	return rooms.IsAdmin(role), nil
}

func (d directory) CheckToken(ctx context.Context, token string) error {
	return d.acc.CheckToken(ctx, token)
}

func (d directory) MemberIDs(ctx context.Context, roomID, viewerID int64) ([]int64, error) {
	ms, err := d.rms.Members(ctx, roomID, viewerID)
	return memberIDs(ms), err
}

func memberIDs(ms []rooms.MemberView) []int64 {
	ids := make([]int64, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids
}

func (d directory) Roster(ctx context.Context, roomID int64) ([]int64, error) {
	ms, err := d.rms.Roster(ctx, roomID)
	return memberIDs(ms), err
}

func (d directory) MemberIDsByUsername(ctx context.Context, roomID int64, usernames []string) ([]int64, error) {
	return d.rms.MemberIDsByUsername(ctx, roomID, usernames)
}

func (d directory) DirectRoom(ctx context.Context, userID, peerID int64) (int64, error) {
	v, _, err := d.rms.Direct(ctx, userID, peerID)
	if err != nil {
		return 0, err
	}
	return v.ID, nil
}

func (d directory) RoomIDs(ctx context.Context, userID int64) ([]int64, error) {
	return d.rms.IDsOf(ctx, userID)
}

func (n *node) rebuildMirror(ctx context.Context, m rooms.Mirror) error {
	copied, err := m.Rebuild(ctx, n.backends.sql)
	if copied > 0 {
		n.log.Info("rebuilt the membership mirror from SQL", "members", copied)
	}
	return err
}

// startBatcher drains the Redis persistence streams into the message
// store until close.
func (n *node) startBatcher(keys chatlog.Keys, reg *prometheus.Registry) {
	// The batcher's wait, 100 ms, suits a node's own SQLite too: its batch
	// is one journal write (store.SQLite.Journal). A second's batch, which
	// SQLite once took more cheaply in one transaction, read a second of
	// entries from Redis at once and held the sends' scripts behind it
	// (docs/BENCHMARKS.md, "Session 24").
	cfg := store.BatcherConfig{Consumer: n.cfg.NodeID, ClaimIdle: n.cfg.ClaimIdle}
	n.batcher = store.NewBatcher(cfg, n.backends.redis, keys, n.backends.msgs, reg, n.log)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.batcher.Run(ctx); err != nil {
			n.log.Error("batcher stopped", "err", err)
		}
	}()
	n.stopBatcher = func() { stop(); <-done }
}

// watchMirror rebuilds the membership mirror when Redis loses it while
// the node runs (a restart without persistence, a failover, FLUSHALL):
// until then members' sends would be refused as not_member.
func (n *node) watchMirror(m rooms.Mirror) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(n.cfg.MirrorCheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := n.rebuildMirror(ctx, m); err != nil && ctx.Err() == nil {
					n.log.Warn("membership mirror", "err", err)
				}
			}
		}
	}()
	n.stopWatch = func() { stop(); <-done }
}

// runFees announces committed fee events in their rooms and, on API
// nodes, runs due auto-pay orders and reminders and finishes payments a
// crash cut off (at start, then every minute), until close.
func (n *node) runFees(money *fees.Fees) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { money.Relay(ctx, n.hub, n.log) })
	if n.cfg.hasRole("api") {
		wg.Go(func() { money.Schedule(ctx, n.cfg.ScheduleTick, n.log) })
		wg.Go(func() { money.Recover(ctx, time.Minute, n.log) })
	}
	n.stopFees = func() { stop(); wg.Wait() }
}

// serve answers on ln until ctx ends, then shuts down gracefully.
func (n *node) serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- n.app.Listener(&steadyListener{ln, n.acceptErrors, n.log}) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		n.log.Info("shutting down")
		// Past the timeout, connections still open (clients holding
		// keep-alives) are cut by closing the node; that is not a failure.
		if err := n.app.ShutdownWithTimeout(10 * time.Second); err != nil {
			n.log.Warn("HTTP connections still open after 10s; closing them", "err", err)
		}
	}
	n.close()
	return err
}

// close says goodbye (1001) to WebSocket clients, then closes backends.
func (n *node) close() {
	if n.stopFees != nil {
		n.stopFees()
	}
	if n.hub != nil {
		n.hub.Close()
	}
	if n.push != nil {
		n.push.Close()
	}
	if n.stopBatcher != nil {
		n.stopBatcher()
	}
	if n.stopWatch != nil {
		n.stopWatch()
	}
	n.backends.close()
}

// lockedWriter serializes writes from the logger, go-redis and run itself.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// redisLogger sends go-redis's own messages (pool dial failures and the
// like) to the node's log instead of a bare stderr logger.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}
