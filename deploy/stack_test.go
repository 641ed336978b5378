package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

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
	Command     []string
	Environment map[string]string
	Ports       []struct{ Target, Published any }
	Volumes     []any
	Secrets     []struct{ Source string }
	Configs     []struct{ Source, Target string }
	Networks    map[string]*struct{ Aliases []string }
	Healthcheck *struct {
		Test     []string
		Interval string
	}
	DependsOn map[string]struct{ Condition string } `yaml:"depends_on"`
	Deploy    struct {
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

// published lists "host->container" ports.
func (s service) published() []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprint(p.Published)+"->"+fmt.Sprint(p.Target))
	}
	return out
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
		if inCI {
			t.Fatalf("CI=true but %s has no `stack config` (Docker CLI 23 or newer needed): %v", docker, err)
		}
		t.Skipf("%s has no `stack config`", docker)
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

// checkCommon is what both stacks promise: the services, the three ports,
// healthchecks everywhere, Redis append-only, the backends' major
// versions, data on named volumes, and the JWT secret as a file.
func checkCommon(p *problems, s stack, nodes []string) {
	for _, name := range append([]string{"lb", "redis", "mongo", "mysql", "prometheus", "grafana"}, nodes...) {
		svc, ok := s.Services[name]
		p.check(ok, "no service %q", name)
		p.check(ok && svc.Healthcheck != nil && len(svc.Healthcheck.Test) > 0 && svc.Healthcheck.Test[0] != "NONE",
			"service %q has no healthcheck", name)
	}
	for name, port := range map[string]string{"lb": "8080->8080", "prometheus": "9090->9090", "grafana": "7070->3000"} {
		p.check(slices.Contains(s.Services[name].published(), port), "%s publishes %v, want %s", name, s.Services[name].published(), port)
	}
	for name, prefix := range map[string]string{"redis": "redis:7", "mongo": "mongo:7", "mysql": "mysql:8"} {
		p.check(strings.HasPrefix(s.Services[name].Image, prefix), "%s image %q, want %s*", name, s.Services[name].Image, prefix)
	}
	p.check(strings.Contains(strings.Join(s.Services["redis"].Command, " "), "--appendonly yes"),
		"redis runs %q, want --appendonly yes", s.Services["redis"].Command)
	for name, mount := range map[string]string{"redis": "/data", "mongo": "/data/db", "mysql": "/var/lib/mysql", "prometheus": "/prometheus", "grafana": "/var/lib/grafana"} {
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
		p.check(strings.HasPrefix(svc.Environment["MOIM_REDIS_URL"], "redis://redis:") && strings.HasPrefix(svc.Environment["MOIM_MONGO_URI"], "mongodb://mongo:"),
			"%s backends: redis %q, mongo %q", name, svc.Environment["MOIM_REDIS_URL"], svc.Environment["MOIM_MONGO_URI"])
	}
	p.check(s.Services["mysql"].Environment["MYSQL_PASSWORD_FILE"] == "/run/secrets/mysql_password" && s.Services["mysql"].uses("mysql_password"),
		"mysql must take its password from the mysql_password secret")
	p.check(s.Services["grafana"].Environment["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password" && s.Services["grafana"].uses("grafana_admin_password"),
		"grafana must take its admin password from the grafana_admin_password secret")
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
	checkCommon(p, s, nodes)

	lbHost, lbPort := nginxUpstream(t)
	ids := map[string]bool{}
	for _, name := range nodes {
		svc := s.Services[name]
		for _, dep := range []string{"redis", "mongo", "mysql"} {
			p.check(svc.DependsOn[dep].Condition == "service_healthy", "%s must wait for %s to be healthy", name, dep)
		}
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
	checkCommon(p, s, []string{"moim"})

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
		p.check(svc.Deploy.Resources.Limits.CPUs != "" && svc.Deploy.Resources.Limits.Memory != "", "%s has no cpu and memory limits", name)
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

	for _, name := range []string{"redis", "mongo", "mysql"} {
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
	p.report()
}
