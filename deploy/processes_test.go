package deploy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"moim/internal/testkit"

	"go.yaml.in/yaml/v3"
)

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
	p := testkit.Start(t, work, id, env, bin)
	p.WaitHTTP(t, "http://"+addr+"/readyz", 90*time.Second)
	return addr
}

// startNginx runs deploy/nginx/nginx.conf and moim.conf with the upstream
// pointed at the nodes, the port on loopback and files in work; every
// other line is the deployed one.
func startNginx(t *testing.T, bin, work string, nodes []string) string {
	t.Helper()
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var servers string
	for _, n := range nodes {
		servers += "    server " + n + ";\n"
	}
	site := substitute(t, "deploy/nginx/moim.conf", map[string]string{
		"    listen 8080;\n": "    listen " + addr + ";\n",
		// Fixed addresses: Debian's nginx (1.22) predates `resolve`.
		"    server moim:8080 resolve;\n": servers,
	})
	var temp string
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temp += fmt.Sprintf("    %s_temp_path %s/%s;\n", kind, dir, kind)
	}
	main := substitute(t, "deploy/nginx/nginx.conf", map[string]string{
		// Whoever runs the test, one worker, files under dir.
		"user nginx;\n":                                        "",
		"worker_processes auto;\n":                             "worker_processes 1;\n",
		"error_log /var/log/nginx/error.log notice;\n":         "error_log stderr warn;\n",
		"pid /run/nginx.pid;\n":                                "pid " + dir + "/nginx.pid;\n",
		"    include /etc/nginx/mime.types;\n":                 "",
		"    access_log /var/log/nginx/access.log combined;\n": "    access_log off;\n" + temp,
		"    include /etc/nginx/conf.d/*.conf;\n":              "    include " + dir + "/moim.conf;\n",
	})
	for name, conf := range map[string]string{"moim.conf": site, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := testkit.Start(t, work, "nginx", baseEnv(), bin, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	base := "http://" + addr
	p.WaitHTTP(t, base+"/lb-healthz", 15*time.Second)
	return base
}

// substitute is a repository file with each old string, which must occur
// exactly once, replaced.
func substitute(t *testing.T, rel string, repl map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for old, new := range repl {
		if strings.Count(conf, old) != 1 {
			t.Fatalf("%s must contain %q once", rel, old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	return conf
}

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
	p := testkit.Start(t, work, "prometheus", baseEnv(), bin,
		"--config.file="+confPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	prom := &prometheus{base: "http://" + addr}
	p.WaitHTTP(t, prom.base+"/-/ready", 30*time.Second)
	return prom
}
