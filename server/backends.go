package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"

	"moim/internal/rawio"
	"moim/sqldb"
	"moim/store"
)

// backends are the stores a node uses: Redis (nil on a single node),
// the message store (MongoDB, or SQLite in the data directory) and the SQL
// database (MySQL/MariaDB, or SQLite in the data directory).
type backends struct {
	redis redis.UniversalClient
	msgs  store.Store
	// sqliteLog is msgs when it is the node's own SQLite log.
	sqliteLog *store.SQLite
	sql       *gorm.DB
	// mongo is the message store's database when it is MongoDB (nil
	// otherwise); attachments keep their bytes in its GridFS.
	mongo *mongo.Database
	// closers run in reverse order on shutdown.
	closers []func()
}

// openBackends connects to Redis, the message store and the SQL database
// (or opens the node's own files for those not configured), retrying
// unreachable ones until cfg.StartupTimeout.
func openBackends(ctx context.Context, cfg Config, log *slog.Logger) (_ *backends, err error) {
	b := &backends{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if cfg.MongoURI == "" || cfg.MySQLDSN == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, &configError{"MOIM_DATA_DIR", err.Error()}
		}
	}
	if err := b.openRedis(ctx, cfg, log); err != nil {
		return nil, err
	}
	if err := b.openMessages(ctx, cfg, log); err != nil {
		return nil, err
	}
	if err := b.openSQL(ctx, cfg, log); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *backends) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// redisPoolSize covers the hub's 64 workers, each waiting on one send
// script at a time, plus fan-out, the batcher and REST; go-redis's default
// (10 per CPU, 20 here) made workers queue for connections under load.
const redisPoolSize = 128

// clusterReload is how often a cluster client re-reads the slot map: a
// replica promoted after its master died is used within this long of the
// cluster's own failover (one CLUSTER SLOTS per interval).
const clusterReload = 2 * time.Second

func (b *backends) openRedis(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.RedisURL == "" {
		log.Info("redis: none; the single-node engine runs in process")
		return nil
	}
	rdb, desc, err := dialRedis(cfg.RedisURL, cfg.NodeID)
	if err != nil {
		return &configError{"MOIM_REDIS_URL", err.Error()}
	}
	b.redis = rdb
	b.closers = append(b.closers, func() { _ = b.redis.Close() })
	if err := retry(ctx, cfg.StartupTimeout, "MOIM_REDIS_URL", func(ctx context.Context) error {
		return b.redis.Ping(ctx).Err()
	}); err != nil {
		return err
	}
	log.Info("redis: external", "at", desc)
	return nil
}

// dialRedis makes a client for url: redis://host:port/db (or rediss://)
// for one Redis, redis+cluster://host1:port,host2:port/ (rediss+cluster://
// with TLS; user, password and go-redis options as in a redis:// URL) for
// a Redis Cluster, reached through any of the listed nodes. Its
// connections are named for node (clientName) unless the URL names them
// (client_name).
func dialRedis(url, node string) (redis.UniversalClient, string, error) {
	scheme, rest, _ := strings.Cut(url, "://")
	plain, cluster := strings.CutSuffix(scheme, "+cluster")
	if !cluster {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, "", err
		}
		if opts.PoolSize == 0 {
			opts.PoolSize = redisPoolSize
		}
		if opts.ClientName == "" {
			opts.ClientName = clientName(node)
		}
		if opts.TLSConfig == nil && opts.Network == "tcp" {
			opts.Dialer = rawDialer(opts.DialTimeout)
		}
		return redis.NewClient(opts), fmt.Sprintf("%s db %d", opts.Addr, opts.DB), nil
	}
	// go-redis spells a cluster as redis://first?addr=second&addr=third.
	userHosts, query, _ := strings.Cut(rest, "?")
	userHosts = strings.TrimSuffix(userHosts, "/")
	user, hosts, hasUser := strings.Cut(userHosts, "@")
	if !hasUser {
		user, hosts = "", userHosts
	}
	nodes := strings.Split(hosts, ",")
	var b strings.Builder
	b.WriteString(plain + "://")
	if hasUser {
		b.WriteString(user + "@")
	}
	b.WriteString(nodes[0] + "?" + query)
	for _, n := range nodes[1:] {
		b.WriteString("&addr=" + n)
	}
	opts, err := redis.ParseClusterURL(b.String())
	if err != nil {
		return nil, "", err
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = redisPoolSize
	}
	if opts.ClientName == "" {
		opts.ClientName = clientName(node)
	}
	// go-redis learns a failover only from a MOVED reply or this periodic
	// reload (default 60 s); a dead master answers nothing, so until the
	// reload every send and subscription of its slots failed.
	opts.ClusterStateReloadInterval = clusterReload
	if opts.TLSConfig == nil {
		opts.Dialer = rawDialer(opts.DialTimeout)
	}
	return redis.NewClusterClient(opts), "cluster " + strings.Join(opts.Addrs, ","), nil
}

// clientName is what a node's Redis connections are called in CLIENT
// LIST, so an operator sees which node holds which: "moim-" and the node's
// name, each byte Redis refuses in a name (spaces, controls, non-ASCII)
// an underscore, since a refused name would fail every connection.
func clientName(node string) string {
	b := []byte("moim-" + node)
	for i, c := range b {
		if c < '!' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b)
}

// rawDialer dials Redis over TCP as go-redis would (its keep-alive
// policy) into connections whose reads and writes are raw system calls
// (internal/rawio: each command's write and reply would otherwise wake the
// runtime's monitor). TLS connections keep go-redis's own dialer.
func rawDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second // go-redis's default
	}
	d := &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return rawio.Dial(ctx, d, network, addr)
	}
}

func (b *backends) openMessages(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.MongoURI == "" {
		lg, err := store.OpenSQLite(cfg.DataDir, cfg.LogSync)
		if err != nil {
			return &configError{"MOIM_DATA_DIR", err.Error()}
		}
		b.msgs, b.sqliteLog = lg, lg
		b.closers = append(b.closers, func() { _ = lg.Close() })
		log.Info("messages: SQLite", "file", filepath.Join(cfg.DataDir, "messages.db"), "sync", cfg.LogSync)
		return nil
	}
	dbName, err := mongoDatabase(cfg.MongoURI)
	if err != nil {
		return err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(cfg.MongoURI).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		return &configError{"MOIM_MONGO_URI", err.Error()}
	}
	b.closers = append(b.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(ctx)
	})
	if err := retry(ctx, cfg.StartupTimeout, "MOIM_MONGO_URI", func(ctx context.Context) error {
		return client.Ping(ctx, nil)
	}); err != nil {
		return err
	}
	b.mongo = client.Database(dbName)
	if b.msgs, err = store.OpenMongo(ctx, b.mongo); err != nil {
		return err
	}
	log.Info("messages: MongoDB", "database", dbName)
	return nil
}

func (b *backends) openSQL(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.MySQLDSN == "" {
		db, err := sqldb.OpenSQLite(cfg.DataDir)
		if err != nil {
			return fmt.Errorf("embedded sqlite: %w", err)
		}
		b.sql = db
		b.closeSQL()
		log.Info("sql: embedded (SQLite)", "file", filepath.Join(cfg.DataDir, "moim.db"))
		return nil
	}
	if _, err := mysql.ParseDSN(cfg.MySQLDSN); err != nil {
		return &configError{"MOIM_MYSQL_DSN", err.Error()}
	}
	var db *gorm.DB
	err := retry(ctx, cfg.StartupTimeout, "MOIM_MYSQL_DSN", func(ctx context.Context) error {
		var err error
		if db == nil {
			if db, err = sqldb.OpenMySQL(cfg.MySQLDSN); err != nil {
				return err
			}
		}
		sqlDB, err := db.DB()
		if err != nil {
			return err
		}
		return sqlDB.PingContext(ctx)
	})
	if err != nil {
		return err
	}
	b.sql = db
	b.closeSQL()
	log.Info("sql: external (MySQL/MariaDB)")
	return nil
}

func (b *backends) closeSQL() {
	b.closers = append(b.closers, func() {
		if sqlDB, err := b.sql.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
}

// retry calls ping until it succeeds or timeout passes, backing off from
// 100 ms to 2 s, and names the setting when it gives up. A configError is
// final: no wait makes a bad setting good.
func retry(ctx context.Context, timeout time.Duration, setting string, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		defer cancelAttempt()
		last = ping(attempt)
		var ce *configError
		if errors.As(last, &ce) {
			return struct{}{}, backoff.Permanent(last)
		}
		return struct{}{}, last
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 2 * time.Second}),
		backoff.WithMaxElapsedTime(0)) // ctx's timeout decides
	var ce *configError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return last
	}
	return &unreachableError{setting: setting, timeout: timeout, err: last}
}

// unreachableError is a backend that did not answer within the startup
// timeout; the node exits with 1.
type unreachableError struct {
	setting string
	timeout time.Duration
	err     error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("%s: not reachable after %s: %v", e.setting, e.timeout, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// jwtSecret returns the configured secret or, in fully embedded mode, the
// one generated on first start and kept in the data directory.
func jwtSecret(cfg Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate JWT secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, &configError{"MOIM_DATA_DIR", "cannot keep the JWT secret: " + err.Error()}
	}
	return []byte(secret), nil
}

// mongoDatabase is the URI's path, or "moim".
func mongoDatabase(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
		return "", &configError{"MOIM_MONGO_URI", "must be a mongodb:// or mongodb+srv:// URI"}
	}
	if name := strings.Trim(u.Path, "/"); name != "" {
		return name, nil
	}
	return "moim", nil
}
