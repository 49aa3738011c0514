package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// consumer is a scratch module that imports some packages, as a user's
// program would.
type consumer struct {
	name    string
	imports []string
	require string // a published module to require instead of distsync
}

// TestConsumerModules builds scratch consumer modules outside the
// repository and checks what importing one backend pulls in: the modules
// linked into the program, and `go list -m all` (the module graph a
// vulnerability scanner reads). Next to them, the same for etcd's own
// concurrency package and bsm/redislock, for scale.
func TestConsumerModules(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	// The library module may require the three backend clients, the
	// OpenTelemetry API and what they require, nothing more: every module
	// in a consumer's graph must be in the graph of a consumer of those
	// alone (or be distsync).
	clients := map[string]bool{"github.com/distsync/distsync": true}
	for _, c := range []consumer{
		{name: "etcd client", imports: []string{"go.etcd.io/etcd/client/v3"}, require: requirement(t, root, "go.etcd.io/etcd/client/v3")},
		{name: "go-redis", imports: []string{"github.com/redis/go-redis/v9"}, require: requirement(t, root, "github.com/redis/go-redis/v9")},
		{name: "go-zookeeper", imports: []string{"github.com/go-zookeeper/zk"}, require: requirement(t, root, "github.com/go-zookeeper/zk")},
		{name: "OpenTelemetry API", imports: []string{"go.opentelemetry.io/otel", "go.opentelemetry.io/otel/metric"},
			require: requirement(t, root, "go.opentelemetry.io/otel") + "\nrequire " + requirement(t, root, "go.opentelemetry.io/otel/metric")},
	} {
		graph, _ := buildConsumer(t, root, c)
		for _, m := range graph {
			clients[m] = true
		}
	}
	for _, c := range []struct {
		consumer
		notLinked []string // module path prefixes that must not be linked
	}{
		{consumer{name: "etcd-only", imports: []string{"github.com/distsync/distsync/etcdsync", "github.com/distsync/distsync/mutex"}},
			[]string{"github.com/redis/", "github.com/go-zookeeper/"}},
		{consumer{name: "redis-only", imports: []string{"github.com/distsync/distsync/fallback/redissync"}},
			[]string{"go.etcd.io/", "github.com/go-zookeeper/", "google.golang.org/grpc"}},
		{consumer{name: "zookeeper-only", imports: []string{"github.com/distsync/distsync/fallback/zksync"}},
			[]string{"go.etcd.io/", "github.com/redis/", "google.golang.org/grpc"}},
		{consumer{name: "etcd concurrency (reference)", imports: []string{"go.etcd.io/etcd/client/v3/concurrency"}, require: "go.etcd.io/etcd/client/v3 v3.7.3"}, nil},
		{consumer{name: "bsm/redislock (reference)", imports: []string{"github.com/bsm/redislock"}, require: "github.com/bsm/redislock v0.9.4"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			graph, linked := buildConsumer(t, root, c.consumer)
			t.Logf("%s: go list -m all: %d modules; linked: %d modules (%s)", c.name, len(graph), len(linked), strings.Join(linked, " "))
			for _, m := range linked {
				for _, p := range c.notLinked {
					if strings.HasPrefix(m, p) {
						t.Errorf("%s links %s", c.name, m)
					}
				}
			}
			if c.require != "" {
				// The control: a module the library does not require is
				// flagged by the check below.
				flagged := 0
				for _, m := range graph {
					if !clients[m] {
						flagged++
					}
				}
				if strings.HasPrefix(c.require, "github.com/bsm/redislock") && flagged == 0 {
					t.Error("control: bsm/redislock's graph passes the check; the check cannot catch an extra module")
				}
				return
			}
			for _, m := range graph {
				if !clients[m] {
					t.Errorf("%s has %s in its module graph: not a backend client or one of theirs", c.name, m)
				}
			}
		})
	}
}

// buildConsumer writes the consumer module in a temporary directory, tidies
// and vets it, and returns its module graph (go list -m all, without the
// main module) and the modules its program links.
func buildConsumer(t *testing.T, root string, c consumer) (graph, linked []string) {
	t.Helper()
	dir := t.TempDir()
	mod := "module example.com/consumer\n\ngo 1.26.0\n"
	if c.require != "" {
		mod += "\nrequire " + c.require + "\n"
	} else {
		mod += fmt.Sprintf("\nrequire github.com/distsync/distsync v0.0.0\n\nreplace github.com/distsync/distsync => %s\n", root)
	}
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n")
	for _, imp := range c.imports {
		fmt.Fprintf(&src, "\t_ %q\n", imp)
	}
	src.WriteString(")\n\nfunc main() {}\n")
	for name, data := range map[string]string{"go.mod": mod, "main.go": src.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go %s in the %s consumer: %v\n%s", strings.Join(args, " "), c.name, err, stderr)
		}
		return string(out)
	}
	goCmd("mod", "tidy")
	for _, l := range strings.Split(strings.TrimSpace(goCmd("list", "-m", "all")), "\n")[1:] {
		graph = append(graph, strings.Fields(l)[0])
	}
	for _, m := range strings.Split(goCmd("list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "."), "\n") {
		if m != "" && m != "example.com/consumer" && !slices.Contains(linked, m) {
			linked = append(linked, m)
		}
	}
	slices.Sort(linked)
	return graph, linked
}

// requirement returns "path version" of module path as the library's
// go.mod requires it.
func requirement(t *testing.T, root, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == path {
			return f[0] + " " + f[1]
		}
	}
	t.Fatalf("the library's go.mod does not require %s", path)
	return ""
}

// TestKitConsumer is the test kit as a user gets it: a scratch module
// outside the repository requires distsync and distsynctest, and tests code
// of its own (testdata/kitconsumer) on an embedded etcd, Redis, ZooKeeper
// and Memory, with losses injected. `go list -m all` must resolve there:
// the kit may require no module that the Go module proxy does not serve.
// The test logs the graph's size and the servers' start-up times.
func TestKitConsumer(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	dir := t.TempDir()
	mod := fmt.Sprintf(`module example.com/kitconsumer

go 1.26.0

require (
	github.com/distsync/distsync v0.0.0
	github.com/distsync/distsync/distsynctest v0.0.0
)

replace (
	github.com/distsync/distsync => %s
	github.com/distsync/distsync/distsynctest => %s
)
`, root, filepath.Join(root, "distsynctest"))
	files := map[string]string{"go.mod": mod}
	for _, f := range []string{"job.go", "job_test.go"} {
		data, err := os.ReadFile(filepath.Join("testdata", "kitconsumer", f+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(data)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in the kit consumer: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	goCmd("mod", "tidy")
	graph := strings.Split(strings.TrimSpace(goCmd("list", "-m", "all")), "\n")
	t.Logf("kit consumer: go list -m all: %d modules", len(graph))
	out := goCmd("test", "-count=1", "-v", ".")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "start-up:") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if !strings.Contains(out, "--- PASS: TestRunStopsOnLoss") {
		t.Fatalf("the kit consumer's test did not pass:\n%s", out)
	}
}
