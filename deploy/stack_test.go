package deploy

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"

	"go.yaml.in/yaml/v3"
)

// stack is a compose file as the docker tools print it after parsing:
// defaults filled in, variables substituted, paths made absolute.
type stack struct {
	Services map[string]service
	Networks map[string]struct{ Driver string }
	Volumes  map[string]any
	Secrets  map[string]struct {
		File     string
		External bool
		Name     string
	}
	Configs map[string]struct{ File, Name string }
}

type service struct {
	Image       string
	Build       any
	Command     []string
	Environment map[string]string
	// Ports are maps, or "[ip:]published:target/proto" strings where
	// docker-compose 1.x keeps the short syntax.
	Ports       []any
	Volumes     []any
	Secrets     []struct{ Source string }
	Configs     []struct{ Source, Target string }
	Networks    map[string]*struct{ Aliases []string }
	Healthcheck *struct {
		Test     []string
		Interval string
	}
	DependsOn       map[string]struct{ Condition string } `yaml:"depends_on"`
	StopGracePeriod string                                `yaml:"stop_grace_period"`
	Logging         *struct {
		Driver  string
		Options map[string]string
	}
	Ulimits map[string]struct{ Soft, Hard int }
	Deploy  struct {
		Mode         string
		EndpointMode string `yaml:"endpoint_mode"`
		Replicas     int
		UpdateConfig *struct {
			Parallelism   *int
			Order         string
			FailureAction string `yaml:"failure_action"`
		} `yaml:"update_config"`
		RestartPolicy *struct{ Condition string } `yaml:"restart_policy"`
		Resources     struct {
			Limits struct{ CPUs, Memory string }
		}
		Placement struct{ Constraints []string }
	}
}

// port is one published port as the tools print it.
type port struct {
	hostIP, published, target, mode string
}

// ports reads the long syntax (maps) and docker-compose 1.x's strings.
func (s service) ports() []port {
	var out []port
	for _, raw := range s.Ports {
		switch v := raw.(type) {
		case map[string]any:
			str := func(k string) string {
				if v[k] == nil {
					return ""
				}
				return fmt.Sprint(v[k])
			}
			out = append(out, port{str("host_ip"), str("published"), str("target"), str("mode")})
		case string:
			spec, _, _ := strings.Cut(v, "/")
			parts := strings.Split(spec, ":")
			p := port{target: parts[len(parts)-1]}
			if len(parts) > 1 {
				p.published = parts[len(parts)-2]
			}
			if len(parts) > 2 {
				p.hostIP = parts[0]
			}
			out = append(out, p)
		}
	}
	return out
}

// published lists "host->container" ports.
func (s service) published() []string {
	var out []string
	for _, p := range s.ports() {
		out = append(out, p.published+"->"+p.target)
	}
	return out
}

// memoryLimit is the service's memory limit in bytes, 0 when it has none.
func (s service) memoryLimit(t *testing.T) int64 {
	t.Helper()
	if s.Deploy.Resources.Limits.Memory == "" {
		return 0
	}
	return parseBytes(t, s.Deploy.Resources.Limits.Memory)
}

// parseBytes reads a size as the tools print it ("1G", "1073741824",
// "900MiB", Redis's "1536mb"): binary units, case-blind.
func parseBytes(t *testing.T, v string) int64 {
	t.Helper()
	m := regexp.MustCompile(`^(?i)(\d+)\s*([kmgt]?)(i?b)?$`).FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		t.Fatalf("%q is not a size", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	shift := strings.Index("kmgt", strings.ToLower(m[2])) + 1
	if m[2] == "" {
		shift = 0
	}
	return n << (10 * shift)
}

// flag is the value after name in a command line, "" when absent.
func flag(command []string, name string) string {
	i := slices.Index(command, name)
	if i < 0 || i+1 >= len(command) {
		return ""
	}
	return command[i+1]
}

// namedVolumes are the volume sources that are not host paths.
func (s service) namedVolumes() []string {
	var out []string
	for _, v := range s.Volumes {
		var src string
		switch v := v.(type) {
		case string: // docker-compose 1.x: "src:dst[:mode]"
			src, _, _ = strings.Cut(v, ":")
		case map[string]any:
			if v["type"] != "volume" {
				continue
			}
			src, _ = v["source"].(string)
		}
		if src != "" && !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, ".") {
			out = append(out, src)
		}
	}
	return out
}

// binds maps each bind-mounted target to its host path.
func (s service) binds() map[string]string {
	out := map[string]string{}
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string: // docker-compose 1.x: "src:dst[:mode]"
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && strings.HasPrefix(parts[0], "/") {
				out[parts[1]] = parts[0]
			}
		case map[string]any:
			if v["type"] == "bind" {
				src, _ := v["source"].(string)
				dst, _ := v["target"].(string)
				out[dst] = src
			}
		}
	}
	return out
}

func (s service) uses(secret string) bool {
	return slices.ContainsFunc(s.Secrets, func(r struct{ Source string }) bool { return r.Source == secret })
}

// composeConfig parses file with the compose tool at hand: the `docker
// compose` plugin when the docker CLI has it, else Debian's docker-compose.
func composeConfig(t *testing.T, file string) stack {
	t.Helper()
	root := repoRoot(t)
	var out []byte
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		out = runTool(t, root, time.Minute, docker, "compose", "-f", file, "config")
	} else {
		out = runTool(t, root, time.Minute, needTool(t, "docker-compose", "docker-compose"), "-f", file, "config")
	}
	return parseStack(t, file, out)
}

// swarmConfig parses file with `docker stack config`, the parser
// `docker stack deploy` uses. Debian's docker.io (20.10) lacks that
// command; the docker CLI this project's machines come with has it.
func swarmConfig(t *testing.T, file string) stack {
	t.Helper()
	docker := needTool(t, "docker", "docker.io")
	if err := exec.Command(docker, "stack", "config", "--help").Run(); err != nil {
		testkit.Missing(t, "%s has no `stack config` (Docker CLI 23 or newer needed): %v", docker, err)
	}
	return parseStack(t, file, runTool(t, repoRoot(t), time.Minute, docker, "stack", "config", "-c", file))
}

func parseStack(t *testing.T, file string, out []byte) stack {
	t.Helper()
	var s stack
	if err := yaml.Unmarshal(out, &s); err != nil {
		t.Fatalf("%s as parsed: %v\n%s", file, err, out)
	}
	if len(s.Services) == 0 {
		t.Fatalf("%s has no services:\n%s", file, out)
	}
	return s
}

// problems collects every broken expectation so one run shows them all.
type problems struct {
	t    *testing.T
	file string
	list []string
}

func (p *problems) check(ok bool, format string, args ...any) {
	if !ok {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) report() {
	p.t.Helper()
	if len(p.list) > 0 {
		p.t.Errorf("%s:\n  %s", p.file, strings.Join(p.list, "\n  "))
	}
}

// checkCommon is what both stacks promise: the services, the public ports,
// healthchecks, rotated logs and resource limits everywhere, Redis
// append-only and bounded, the backends' major versions, data on named
// volumes, and the JWT secret as a file. mongo names the (first) MongoDB
// member.
func checkCommon(t *testing.T, p *problems, s stack, nodes []string, mongo string) {
	t.Helper()
	for _, name := range append([]string{"lb", "redis", mongo, "mysql", "prometheus", "grafana"}, nodes...) {
		svc, ok := s.Services[name]
		p.check(ok, "no service %q", name)
		p.check(ok && svc.Healthcheck != nil && len(svc.Healthcheck.Test) > 0 && svc.Healthcheck.Test[0] != "NONE",
			"service %q has no healthcheck", name)
	}
	for name, port := range map[string]string{"lb": "8080->8080", "grafana": "7070->3000"} {
		p.check(slices.Contains(s.Services[name].published(), port), "%s publishes %v, want %s", name, s.Services[name].published(), port)
	}
	for name, svc := range s.Services {
		// Docker's json-file driver keeps logs forever unless told not to.
		p.check(svc.Logging != nil && svc.Logging.Driver == "json-file" && svc.Logging.Options["max-size"] != "" && svc.Logging.Options["max-file"] != "",
			"%s does not rotate its logs (logging: json-file with max-size and max-file)", name)
		p.check(svc.Deploy.Resources.Limits.CPUs != "" && svc.Deploy.Resources.Limits.Memory != "", "%s has no cpu and memory limits", name)
	}
	// Prometheus has no login: at most on the host's loopback.
	for _, pt := range s.Services["prometheus"].ports() {
		p.check(pt.hostIP == "127.0.0.1", "prometheus publishes %s on %q, want 127.0.0.1 only (it has no login)", pt.published, pt.hostIP)
	}
	for name, prefix := range map[string]string{"redis": "redis:7", mongo: "mongo:7", "mysql": "mysql:8"} {
		p.check(strings.HasPrefix(s.Services[name].Image, prefix), "%s image %q, want %s*", name, s.Services[name].Image, prefix)
	}
	redis := s.Services["redis"]
	p.check(strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes"),
		"redis runs %q, want --appendonly yes", redis.Command)
	// A full Redis must refuse writes, never evict unstored messages, and
	// fill below its container's limit (the rest is the AOF rewrite's).
	p.check(flag(redis.Command, "--maxmemory-policy") == "noeviction", "redis runs %q, want --maxmemory-policy noeviction", redis.Command)
	p.check(flag(redis.Command, "--lazyfree-lazy-expire") == "yes", "redis runs %q, want --lazyfree-lazy-expire yes (a busy room's cids hash freed in the background)", redis.Command)
	if max := flag(redis.Command, "--maxmemory"); max == "" {
		p.check(false, "redis runs %q without --maxmemory", redis.Command)
	} else {
		limit := redis.memoryLimit(t)
		p.check(parseBytes(t, max) <= limit*4/5, "redis maxmemory %s must leave a fifth of its %d-byte memory limit free", max, limit)
	}
	// The alert that warns before Redis is full needs its exporter scraped.
	_, ok := s.Services["redis-exporter"]
	p.check(ok && s.Services["redis-exporter"].Environment["REDIS_ADDR"] == "redis://redis:6379", "no redis-exporter reading redis:6379 (alert RedisMemoryHigh)")
	// The generated root password would be printed to MySQL's log.
	mysql := s.Services["mysql"]
	p.check(mysql.Environment["MYSQL_RANDOM_ROOT_PASSWORD"] == "" && mysql.Environment["MYSQL_ROOT_PASSWORD_FILE"] == "/run/secrets/mysql_root_password" && mysql.uses("mysql_root_password"),
		"mysql must take its root password from the mysql_root_password secret (a random one is printed to its log)")
	for name, mount := range map[string]string{"redis": "/data", mongo: "/data/db", "mysql": "/var/lib/mysql", "prometheus": "/prometheus", "grafana": "/var/lib/grafana"} {
		vols := s.Services[name].namedVolumes()
		p.check(len(vols) == 1, "%s keeps %s on named volumes %v, want one", name, mount, vols)
		for _, v := range vols {
			_, declared := s.Volumes[v]
			p.check(declared, "%s uses volume %q not declared at the top level", name, v)
		}
	}
	for _, name := range nodes {
		svc := s.Services[name]
		p.check(svc.Environment["MOIM_JWT_SECRET"] == "" && svc.Environment["MOIM_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret" && svc.uses("jwt_secret"),
			"%s must read the JWT secret from the jwt_secret secret (MOIM_JWT_SECRET_FILE), never the environment", name)
		p.check(svc.Environment["MOIM_MYSQL_DSN_FILE"] == "/run/secrets/mysql_dsn" && svc.uses("mysql_dsn"),
			"%s must read its MySQL DSN (which holds the password) from the mysql_dsn secret", name)
		// Browsers subscribe with one public key: a node signing with a
		// pair of its own (generated into its data directory) sends pushes
		// that fail to verify.
		p.check(svc.Environment["MOIM_VAPID_PUBLIC_KEY_FILE"] == "/run/secrets/vapid_public_key" && svc.uses("vapid_public_key") &&
			svc.Environment["MOIM_VAPID_PRIVATE_KEY_FILE"] == "/run/secrets/vapid_private_key" && svc.uses("vapid_private_key") &&
			svc.Environment["MOIM_VAPID_PRIVATE_KEY"] == "",
			"%s must read the shared VAPID pair from the vapid_public_key and vapid_private_key secrets", name)
		p.check(strings.HasPrefix(svc.Environment["MOIM_REDIS_URL"], "redis://redis:") && strings.HasPrefix(svc.Environment["MOIM_MONGO_URI"], "mongodb://"+mongo+":"),
			"%s backends: redis %q, mongo %q", name, svc.Environment["MOIM_REDIS_URL"], svc.Environment["MOIM_MONGO_URI"])
		// The Go heap's soft limit, under the container's: the runtime
		// collects harder before the kernel kills the node.
		if gml := svc.Environment["GOMEMLIMIT"]; gml == "" {
			p.check(false, "%s has no GOMEMLIMIT", name)
		} else {
			limit := svc.memoryLimit(t)
			p.check(parseBytes(t, gml) >= limit*7/10 && parseBytes(t, gml) <= limit*95/100,
				"%s GOMEMLIMIT %s, want 70–95%% of its %d-byte memory limit", name, gml, limit)
		}
	}
	p.check(s.Services["mysql"].Environment["MYSQL_PASSWORD_FILE"] == "/run/secrets/mysql_password" && s.Services["mysql"].uses("mysql_password"),
		"mysql must take its password from the mysql_password secret")
	p.check(s.Services["grafana"].Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password" && s.Services["grafana"].uses("grafana_admin_password"),
		"grafana must take its admin password from the grafana_admin_password secret")
}

// checkReplicaSet: MongoDB runs as a replica set of size members, which
// the stack's mongo-init service initiates with exactly those members, and
// every node names them all in its URI with w=majority and journal, so a
// batch leaves Redis only once a majority has it on disk.
func checkReplicaSet(p *problems, s stack, nodes []string, size int) {
	var members []string
	set := ""
	for name, svc := range s.Services {
		if len(svc.Command) == 0 || svc.Command[0] != "mongod" {
			continue
		}
		rs := flag(svc.Command, "--replSet")
		p.check(rs != "", "%s runs mongod without --replSet", name)
		if set == "" {
			set = rs
		}
		p.check(rs == set, "%s is in replica set %q, others in %q", name, rs, set)
		members = append(members, name+":27017")
	}
	sort.Strings(members)
	p.check(len(members) == size, "MongoDB members %v, want %d", members, size)

	init, ok := s.Services["mongo-init"]
	p.check(ok, "no mongo-init service initiates the replica set")
	initMembers := strings.Split(init.Environment["MOIM_REPLICA_MEMBERS"], ",")
	sort.Strings(initMembers)
	p.check(init.Environment["MOIM_REPLICA_SET"] == set && slices.Equal(initMembers, members),
		"mongo-init initiates %q with %v, want %q with %v", init.Environment["MOIM_REPLICA_SET"], initMembers, set, members)
	p.check(slices.Contains(init.Command, "/init-replica-set.js"), "mongo-init runs %q, want deploy/mongo/init-replica-set.js", init.Command)

	for _, name := range nodes {
		uri := s.Services[name].Environment["MOIM_MONGO_URI"]
		rest, ok := strings.CutPrefix(uri, "mongodb://")
		hostList, params, _ := strings.Cut(rest, "?")
		hostList, _, _ = strings.Cut(hostList, "/")
		hosts := strings.Split(hostList, ",")
		sort.Strings(hosts)
		q, err := url.ParseQuery(params)
		p.check(ok && err == nil && slices.Equal(hosts, members), "%s MOIM_MONGO_URI %q must name every member %v", name, uri, members)
		p.check(q.Get("replicaSet") == set && q.Get("w") == "majority" && q.Get("journal") == "true",
			"%s MOIM_MONGO_URI %q needs replicaSet=%s&w=majority&journal=true", name, uri, set)
	}
}

// secretNames are the files deploy/secrets.sh writes.
func secretNames(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	runTool(t, repoRoot(t), 30*time.Second, "bash", "deploy/secrets.sh", dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func keys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// nginxUpstream is the name and port the load balancer sends traffic to.
func nginxUpstream(t *testing.T) (host, port string) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/nginx/moim.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*server ([a-z0-9-]+):(\d+) resolve;`).FindSubmatch(conf)
	if m == nil {
		t.Fatal("deploy/nginx/moim.conf has no upstream `server HOST:PORT resolve;`")
	}
	return string(m[1]), string(m[2])
}

func TestComposeStack(t *testing.T) {
	s := composeConfig(t, "docker-compose.yml")
	p := &problems{t: t, file: "docker-compose.yml"}
	nodes := []string{"moim-1", "moim-2"}
	checkCommon(t, p, s, nodes, "mongo")
	checkReplicaSet(p, s, nodes, 1)

	// Two services building one tag race on a fresh host ("image already
	// exists"): one builds, the others run what it built.
	builders := map[string][]string{}
	for name, svc := range s.Services {
		if svc.Build != nil {
			builders[svc.Image] = append(builders[svc.Image], name)
		}
	}
	for image, names := range builders {
		p.check(len(names) == 1, "%v all build %s; give one of them `build:`", names, image)
	}
	p.check(s.Services["moim-1"].Build != nil && s.Services["moim-2"].Image == s.Services["moim-1"].Image,
		"moim-1 builds the image moim-2 runs")
	p.check(slices.Contains(s.Services["prometheus"].published(), "9090->9090"), "prometheus publishes %v, want 9090 on loopback", s.Services["prometheus"].published())
	for target, file := range map[string]string{"/etc/nginx/nginx.conf": "deploy/nginx/nginx.conf", "/etc/nginx/conf.d/default.conf": "deploy/nginx/moim.conf"} {
		got := s.Services["lb"].binds()[target]
		p.check(got == filepath.Join(repoRoot(t), file), "lb needs %s at %s, got %q", file, target, got)
	}

	lbHost, lbPort := nginxUpstream(t)
	ids := map[string]bool{}
	for _, name := range nodes {
		svc := s.Services[name]
		for _, dep := range []string{"redis", "mysql"} {
			p.check(svc.DependsOn[dep].Condition == "service_healthy", "%s must wait for %s to be healthy", name, dep)
		}
		p.check(svc.DependsOn["mongo-init"].Condition == "service_completed_successfully", "%s must wait for mongo-init to initiate the replica set", name)
		net := svc.Networks["default"]
		p.check(net != nil && slices.Contains(net.Aliases, lbHost), "%s lacks the network alias %q that nginx proxies to", name, lbHost)
		p.check(lbPort == "8080", "nginx proxies to port %s; nodes listen on 8080", lbPort)
		ids[svc.Environment["MOIM_NODE_ID"]] = true
	}
	p.check(len(ids) == len(nodes) && !ids[""], "node ids %v must be set and distinct", keys(ids))
	for _, name := range nodes {
		p.check(s.Services["lb"].DependsOn[name].Condition == "service_healthy", "lb must wait for %s", name)
	}
	p.check(s.Services["grafana"].DependsOn["prometheus"].Condition == "service_healthy", "grafana must wait for prometheus")

	// Every secret the stack mounts is one deploy/secrets.sh writes.
	want := secretNames(t)
	p.check(slices.Equal(keys(s.Secrets), want), "secrets %v, deploy/secrets.sh writes %v", keys(s.Secrets), want)
	for name, sec := range s.Secrets {
		p.check(filepath.Base(sec.File) == name && filepath.Dir(sec.File) == filepath.Join(repoRoot(t), "secrets"),
			"secret %s comes from %s, want ./secrets/%s", name, sec.File, name)
	}

	// Prometheus scrapes exactly the compose nodes, each on its own.
	prom := readPrometheusConfig(t, "deploy/prometheus/prometheus.yml")
	var targets []string
	for _, sc := range prom.job(t, "moim").StaticConfigs {
		targets = append(targets, sc.Targets...)
	}
	sort.Strings(targets)
	p.check(slices.Equal(targets, []string{"moim-1:8080", "moim-2:8080"}), "prometheus.yml scrapes %v, want each compose node", targets)
	p.report()
}

func TestSwarmStack(t *testing.T) {
	// docker-compose parses it too (ignoring configs); both must accept it.
	_ = composeConfig(t, "docker-swarm.yml")
	s := swarmConfig(t, "docker-swarm.yml")
	p := &problems{t: t, file: "docker-swarm.yml"}
	checkCommon(t, p, s, []string{"moim"}, "mongo-1")
	checkReplicaSet(p, s, []string{"moim"}, 3)

	var overlay string
	for name, n := range s.Networks {
		if n.Driver == "overlay" {
			overlay = name
		}
	}
	p.check(overlay != "", "no overlay network among %v", keys(s.Networks))
	for name, svc := range s.Services {
		_, onOverlay := svc.Networks[overlay]
		p.check(onOverlay, "%s is not on the overlay network %q", name, overlay)
		p.check(svc.Deploy.RestartPolicy != nil && svc.Deploy.RestartPolicy.Condition != "", "%s has no restart policy", name)
	}
	p.check(len(s.Services["prometheus"].Ports) == 0, "prometheus publishes %v: swarm cannot bind it to loopback, and it has no login", s.Services["prometheus"].published())
	// The routing mesh would show nginx the swarm node a client came in
	// by, not the client: every user would share the per-address limits.
	for _, pt := range s.Services["lb"].ports() {
		p.check(pt.mode == "host", "lb publishes %s in %q mode, want host (client addresses)", pt.published, pt.mode)
	}
	// Members of one replica set on one node would fall together.
	pinned := map[string]bool{}
	for _, name := range []string{"mongo-1", "mongo-2", "mongo-3"} {
		c := strings.Join(s.Services[name].Deploy.Placement.Constraints, ",")
		p.check(c != "" && !pinned[c], "%s must be pinned to a node label of its own, got %q", name, c)
		pinned[c] = true
	}

	moim := s.Services["moim"]
	p.check(moim.Deploy.Replicas == 3, "moim replicas %d, want 3", moim.Deploy.Replicas)
	uc := moim.Deploy.UpdateConfig
	p.check(uc != nil && uc.FailureAction == "rollback", "moim update_config must roll back on failure")
	p.check(uc != nil && (uc.Order == "start-first" || (uc.Parallelism != nil && *uc.Parallelism == 1)),
		"moim update_config must start the new replica first or update one at a time")
	p.check(strings.Contains(moim.Environment["MOIM_NODE_ID"], "{{.Task.Slot}}"), "each replica needs its own MOIM_NODE_ID (a swarm template), got %q", moim.Environment["MOIM_NODE_ID"])
	lbHost, _ := nginxUpstream(t)
	_, ok := s.Services[lbHost]
	p.check(ok, "nginx proxies to %q, which is no service of the swarm stack", lbHost)

	for _, name := range []string{"redis", "mysql"} {
		p.check(len(s.Services[name].Deploy.Placement.Constraints) > 0, "%s is not pinned by a placement constraint to the node holding its volume", name)
	}

	// Secrets are created outside the stack, from deploy/secrets.sh's files.
	for _, name := range secretNames(t) {
		sec, ok := s.Secrets[name]
		p.check(ok && sec.External && sec.Name == "moim_"+name, "secret %s must be external and named moim_%s", name, name)
	}
	// Every config is a file of this repository.
	mounted := map[string]string{} // config target -> source file
	for name, svc := range s.Services {
		for _, c := range svc.Configs {
			cfg, ok := s.Configs[c.Source]
			p.check(ok, "%s uses undeclared config %q", name, c.Source)
			_, err := os.Stat(cfg.File)
			p.check(err == nil, "config %s: %v", c.Source, err)
			mounted[c.Target] = cfg.File
		}
	}

	// Prometheus discovers every replica through tasks.<service>.
	promFile, ok := mounted["/etc/prometheus/prometheus.yml"]
	p.check(ok, "prometheus gets no /etc/prometheus/prometheus.yml config")
	if ok {
		rel, _ := filepath.Rel(repoRoot(t), promFile)
		var names []string
		for _, sd := range readPrometheusConfig(t, rel).job(t, "moim").DNSSDConfigs {
			p.check(sd.Type == "A" && sd.Port == 8080, "dns_sd %+v must ask for A records on port 8080", sd)
			names = append(names, sd.Names...)
		}
		p.check(slices.Equal(names, []string{"tasks.moim"}), "%s discovers %v, want tasks.moim (one target per replica)", rel, names)
	}
	for target, file := range map[string]string{"/etc/nginx/nginx.conf": "deploy/nginx/nginx.conf", "/etc/nginx/conf.d/default.conf": "deploy/nginx/moim.conf"} {
		p.check(mounted[target] == filepath.Join(repoRoot(t), file), "lb needs %s at %s, got %q", file, target, mounted[target])
	}
	// Grafana gets its data source, its dashboard provider and the dashboard where the provider looks.
	provider := readYAML[struct {
		Providers []struct{ Options struct{ Path string } }
	}](t, "deploy/grafana/provisioning/dashboards/moim.yml")
	if len(provider.Providers) != 1 {
		t.Fatalf("deploy/grafana/provisioning/dashboards/moim.yml: want one provider, got %d", len(provider.Providers))
	}
	for target, file := range map[string]string{
		"/etc/grafana/provisioning/datasources/prometheus.yml": "deploy/grafana/provisioning/datasources/prometheus.yml",
		"/etc/grafana/provisioning/dashboards/moim.yml":        "deploy/grafana/provisioning/dashboards/moim.yml",
		provider.Providers[0].Options.Path + "/moim.json":      "deploy/grafana/dashboards/moim.json",
	} {
		p.check(mounted[target] == filepath.Join(repoRoot(t), file), "grafana needs %s at %s, got %q", file, target, mounted[target])
	}
	p.report()
}

// TestDockerfile checks what the image promises without a Docker engine
// (the GitHub workflow builds it): a static build on the go.mod toolchain,
// a non-root runtime, port 8080 and a healthcheck the image can run.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	p := &problems{t: t, file: "Dockerfile"}
	stages := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	p.check(len(stages) >= 2, "want a multi-stage build, got stages %v", stages)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	p.check(goVersion != nil && len(stages) > 0 && strings.HasPrefix(stages[0][1], "golang:"+string(goVersion[1])),
		"build stage %v must use go.mod's Go %s", stages, goVersion[1])
	p.check(strings.Contains(df, "CGO_ENABLED=0"), "the binary must be built with CGO_ENABLED=0")
	final := df[strings.LastIndex(df, "\nFROM "):]
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(final)
	p.check(user != nil && !strings.HasPrefix(user[1], "root") && !strings.HasPrefix(user[1], "0"), "the runtime stage must run as a non-root USER, got %v", user)
	p.check(regexp.MustCompile(`(?m)^EXPOSE\s+8080\b`).MatchString(final), "the image must EXPOSE 8080")
	p.check(regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/moim", "-healthcheck"\]`).MatchString(final), "HEALTHCHECK must run the binary's own -healthcheck")
	p.check(regexp.MustCompile(`(?m)^ENTRYPOINT \["/moim"\]`).MatchString(final), "ENTRYPOINT must be the binary")
	// `COPY . .` must not send the browser tests' npm packages to the build.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	p.check(slices.ContainsFunc(strings.Split(string(ignore), "\n"), func(l string) bool {
		return slices.Contains([]string{"web/e2e/node_modules", "web/e2e", "**/node_modules"}, strings.TrimSpace(l))
	}), ".dockerignore must exclude web/e2e/node_modules")
	p.report()
}

// drain is the longest a node may take to stop after SIGTERM: the HTTP
// shutdown's 10 s (server/main.go), then one store attempt of the
// batcher's last batch, 30 s (store/batcher.go).
const drain = 40 * time.Second

// TestNodeStopGrace: Docker kills a container its stop grace after
// SIGTERM, so both stacks must give the nodes the same grace, longer than
// their drain, or a stop or update cuts close frames and stored batches.
func TestNodeStopGrace(t *testing.T) {
	graces := map[string]string{}
	for file, nodes := range map[string][]string{"docker-compose.yml": {"moim-1", "moim-2"}, "docker-swarm.yml": {"moim"}} {
		s := composeConfig(t, file)
		for _, n := range nodes {
			graces[file+" "+n] = s.Services[n].StopGracePeriod
		}
	}
	var first string
	for where, g := range graces {
		d, err := time.ParseDuration(g)
		if err != nil || d <= drain {
			t.Errorf("%s: stop_grace_period %q, want longer than the node's %s drain", where, g, drain)
		}
		if first == "" {
			first = g
		}
		if normal, _ := time.ParseDuration(first); d != normal {
			t.Errorf("stop grace differs between the stacks: %v", graces)
		}
	}
}

// TestLoadBalancerCapacity: nginx holds the capacity README states, with
// both connections of every proxied WebSocket (client and node) in one
// worker (nginx does not spread connections evenly), and the container
// lets each worker open that many files.
func TestLoadBalancerCapacity(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sized for\s+([0-9,]+)\s+concurrent\s+WebSocket\s+users`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md does not state the capacity (`sized for N concurrent WebSocket users`)")
	}
	users, _ := strconv.Atoi(strings.ReplaceAll(string(m[1]), ",", ""))
	conf, err := os.ReadFile(filepath.Join(root, "deploy/nginx/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	directive := func(name string) int {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s+(\d+);`).FindSubmatch(conf)
		if m == nil {
			t.Fatalf("deploy/nginx/nginx.conf does not set %s", name)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	conns, files := directive("worker_connections"), directive("worker_rlimit_nofile")
	if conns < 2*users {
		t.Errorf("worker_connections %d: %d WebSockets need %d", conns, users, 2*users)
	}
	if files < conns {
		t.Errorf("worker_rlimit_nofile %d is below worker_connections %d", files, conns)
	}
	for _, file := range []string{"docker-compose.yml", "docker-swarm.yml"} {
		nofile := composeConfig(t, file).Services["lb"].Ulimits["nofile"]
		if nofile.Soft < files || nofile.Hard < files {
			t.Errorf("%s: lb ulimits nofile %+v, want at least worker_rlimit_nofile %d", file, nofile, files)
		}
	}
}

// TestWorkflowMatchesStacks: the GitHub workflow tests against the stacks'
// own backend images and brings the compose stack up with README's very
// command, on a host that has not built the image.
func TestWorkflowMatchesStacks(t *testing.T) {
	type job struct {
		Services map[string]struct{ Image string }
		Steps    []struct{ Run string }
	}
	wf := readYAML[struct{ Jobs map[string]job }](t, ".github/workflows/ci.yml")
	compose, swarm := composeConfig(t, "docker-compose.yml"), composeConfig(t, "docker-swarm.yml")
	for name, want := range map[string]string{"redis": compose.Services["redis"].Image, "mongo": compose.Services["mongo"].Image, "mysql": compose.Services["mysql"].Image} {
		if got := wf.Jobs["test"].Services[name].Image; got != want {
			t.Errorf("the workflow's %s is %q, the compose stack's %q", name, got, want)
		}
	}
	for compName, swarmName := range map[string]string{"redis": "redis", "mongo": "mongo-1", "mysql": "mysql"} {
		if c, s := compose.Services[compName].Image, swarm.Services[swarmName].Image; c != s {
			t.Errorf("compose runs %s, swarm %s", c, s)
		}
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^(docker compose up\b.*?)\s*(#.*)?$`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no `docker compose up` line")
	}
	var runs []string
	for _, st := range wf.Jobs["image"].Steps {
		for _, l := range strings.Split(st.Run, "\n") {
			runs = append(runs, strings.TrimSpace(l))
		}
	}
	if !slices.Contains(runs, string(m[1])) {
		t.Errorf("the workflow's image job never runs README's %q", m[1])
	}
}
