package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"moim/chatlog"
)

// Settings every node of a chaos run shares.
const (
	jwtSecret    = "chaos-secret-chaos-secret-chaos-secret-0123"
	streamShards = 16
	mongoDB      = "moim_chaos"
	// claimIdle is short so a killed node's unstored entries move to the
	// others within seconds (the default 30 s outlasts a CI run).
	claimIdle = 2 * time.Second
)

// bed is one scenario's world: the store, the SQL database, a Redis
// prefix (or a Redis Cluster) and the Moim nodes, each a process of its
// own, all stopped by close.
type bed struct {
	o      *options
	dir    string
	prefix string

	redisURL string
	rdb      redis.UniversalClient
	cluster  string // scripts/redis-cluster.sh DIR when the bed has its own cluster

	admin   *sql.DB
	dbName  string
	nodeDSN string

	ferretAddr string
	ferretDir  string
	ferret     *proc

	nodes []*moimNode

	mu     sync.Mutex
	closed bool
}

// moimNode is one Moim process.
type moimNode struct {
	id   string
	addr string
	url  string
	dir  string
	p    *proc
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newBed starts the store and three nodes. With cluster it first starts
// a Redis Cluster of 3 masters and 3 replicas (scripts/redis-cluster.sh).
func newBed(ctx context.Context, o *options, name string, cluster bool) (b *bed, err error) {
	b = &bed{o: o, prefix: "chaos" + randomHex(4)}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.dir, err = os.MkdirTemp(o.workDir, name+"-"); err != nil {
		return nil, err
	}
	b.redisURL = o.redisURL
	if cluster {
		b.cluster = filepath.Join(b.dir, "cluster")
		if b.redisURL, err = startCluster(ctx, o.repo, b.cluster); err != nil {
			return nil, err
		}
	}
	if b.rdb, err = dialRedis(b.redisURL); err != nil {
		return nil, err
	}
	if err := b.createDatabase(); err != nil {
		return nil, err
	}
	if b.ferretAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	b.ferretDir = filepath.Join(b.dir, "ferretdb")
	if err := b.startFerret(); err != nil {
		return nil, err
	}
	for i := range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		n := &moimNode{id: fmt.Sprintf("chaos-%d", i+1), addr: addr, url: "http://" + addr, dir: filepath.Join(b.dir, fmt.Sprintf("node%d", i+1))}
		b.nodes = append(b.nodes, n)
		if err := b.startNode(n); err != nil {
			return nil, err
		}
	}
	return b, nil
}

var clusterURL = regexp.MustCompile(`MOIM_TEST_REDIS_CLUSTER_URL='([^']+)'`)

// startCluster runs scripts/redis-cluster.sh with REPLICAS=1.
func startCluster(ctx context.Context, repo, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "redis-cluster.sh"), "start", dir)
	cmd.Env = append(os.Environ(), "REPLICAS=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("start a Redis Cluster with replicas: %w\n%s", err, stderr)
	}
	m := clusterURL.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("redis-cluster.sh printed no URL: %q", out)
	}
	return string(m[1]), nil
}

// dialRedis makes a client for a redis:// or redis+cluster://h1,h2/ URL.
func dialRedis(url string) (redis.UniversalClient, error) {
	if rest, ok := strings.CutPrefix(url, "redis+cluster://"); ok {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(strings.TrimSuffix(rest, "/"), ",")}), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	return redis.NewClient(opts), nil
}

// createDatabase makes a fresh database on the -mysql server.
func (b *bed) createDatabase() error {
	cfg, err := mysql.ParseDSN(b.o.mysqlDSN)
	if err != nil {
		return fmt.Errorf("-mysql: %w", err)
	}
	cfg.DBName = ""
	if b.admin, err = sql.Open("mysql", cfg.FormatDSN()); err != nil {
		return fmt.Errorf("-mysql: %w", err)
	}
	name := "moim_" + b.prefix
	if _, err := b.admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("-mysql: create database: %w", err)
	}
	b.dbName = name
	cfg.DBName = name
	b.nodeDSN = cfg.FormatDSN()
	return nil
}

func (b *bed) startFerret() error {
	p, err := startProc("ferretdb", filepath.Join(b.dir, "ferretdb.log"), b.o.bins.ferretdb, nil, "-addr", b.ferretAddr, "-dir", b.ferretDir)
	if err != nil {
		return err
	}
	b.ferret = p
	return waitReady(p, 30*time.Second, tcpUp(b.ferretAddr))
}

// storeURI is the message store the nodes and the store check use.
func (b *bed) storeURI() string { return "mongodb://" + b.ferretAddr + "/" + mongoDB }

func (b *bed) startNode(n *moimNode) error {
	env := []string{
		"MOIM_ADDR=" + n.addr, "MOIM_DATA_DIR=" + n.dir, "MOIM_NODE_ID=" + n.id,
		"MOIM_REDIS_URL=" + b.redisURL, "MOIM_REDIS_PREFIX=" + b.prefix, "MOIM_STREAM_SHARDS=" + strconv.Itoa(streamShards),
		"MOIM_MONGO_URI=" + b.storeURI(), "MOIM_MYSQL_DSN=" + b.nodeDSN, "MOIM_JWT_SECRET=" + jwtSecret,
		"MOIM_BCRYPT_COST=4", "MOIM_INVITE_RULE=anyone", "MOIM_SIGNUP_LIMIT=off", "MOIM_UPGRADE_LIMIT=off", "MOIM_LOGIN_LIMIT=off", "MOIM_LOGIN_ADDRESS_LIMIT=off",
		"MOIM_SEND_RATE=1000", "MOIM_SEND_BURST=1000", "MOIM_SEND_LIMIT=off",
		"MOIM_CLAIM_IDLE=" + claimIdle.String(), "MOIM_PUBSUB_PROBE=500ms", "MOIM_MIRROR_CHECK=1s",
		"MOIM_LOG_LEVEL=warn", "MOIM_STARTUP_TIMEOUT=30s",
	}
	p, err := startProc(n.id, filepath.Join(b.dir, n.id+".log"), b.o.bins.moim, env)
	if err != nil {
		return err
	}
	n.p = p
	return waitReady(p, 60*time.Second, httpOK(n.url+"/readyz"))
}

func (b *bed) urls() []string {
	out := make([]string, len(b.nodes))
	for i, n := range b.nodes {
		out[i] = n.url
	}
	return out
}

// persistStreams are the keys the batchers drain.
func (b *bed) persistStreams() []string {
	k := chatlog.Keys{Prefix: b.prefix, Shards: streamShards}
	out := make([]string, streamShards)
	for i := range out {
		out[i] = k.Persist(i)
	}
	return out
}

// backlog is how many accepted messages wait in Redis to be stored.
func (b *bed) backlog(ctx context.Context) (int64, error) {
	var total int64
	for _, s := range b.persistStreams() {
		n, err := b.rdb.XLen(ctx, s).Result()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// pending is how many persistence entries consumer read and has not
// stored (acknowledged) yet, over every shard and consumer group.
func (b *bed) pending(ctx context.Context, consumer string) (int64, error) {
	var total int64
	for _, s := range b.persistStreams() {
		groups, err := b.rdb.XInfoGroups(ctx, s).Result()
		if err != nil {
			if strings.Contains(err.Error(), "no such key") {
				continue
			}
			return 0, err
		}
		for _, g := range groups {
			p, err := b.rdb.XPending(ctx, s, g.Name).Result()
			if err != nil {
				return 0, err
			}
			total += p.Consumers[consumer]
		}
	}
	return total, nil
}

// close stops every process by PID, drops the database and the Redis
// keys, stops the cluster and removes the directory unless -keep.
func (b *bed) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	var wg sync.WaitGroup
	for _, n := range b.nodes {
		if n.p != nil {
			wg.Go(n.p.stop)
		}
	}
	wg.Wait()
	if b.ferret != nil {
		b.ferret.stop()
	}
	if b.admin != nil {
		if b.dbName != "" {
			_, _ = b.admin.Exec("DROP DATABASE " + b.dbName)
		}
		b.admin.Close()
	}
	if b.rdb != nil {
		if b.cluster == "" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			iter := b.rdb.Scan(ctx, 0, b.prefix+":*", 1000).Iterator()
			for iter.Next(ctx) {
				b.rdb.Del(ctx, iter.Val())
			}
			cancel()
		}
		b.rdb.Close()
	}
	if b.cluster != "" {
		_ = exec.Command(filepath.Join(b.o.repo, "scripts", "redis-cluster.sh"), "stop", b.cluster).Run()
	}
	if !b.o.keep && b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
