package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestParsePositionals(t *testing.T) {
	tests := []struct {
		verb   string
		args   []string
		name   string
		arg    string
		hasArg bool
		cmd    []string
		ttl    time.Duration
	}{
		{"lock", []string{"n"}, "n", "", false, nil, defaultTTL},
		{"lock", []string{"--ttl", "3s", "n", "--", "sh", "-c", "exit 7"}, "n", "", false, []string{"sh", "-c", "exit 7"}, 3 * time.Second},
		{"lock", []string{"n", "--ttl", "3s", "--", "true"}, "n", "", false, []string{"true"}, 3 * time.Second},
		{"lock", []string{"-ttl=4s", "n", "true", "--ttl", "5s"}, "n", "", false, []string{"true", "--ttl", "5s"}, 4 * time.Second},
		{"lock", []string{"n", "--", "cmd", "--", "x"}, "n", "", false, []string{"cmd", "--", "x"}, defaultTTL},
		{"elect", []string{"n"}, "n", "", false, nil, defaultTTL},
		{"elect", []string{"n", "v"}, "n", "v", true, nil, defaultTTL},
		{"elect", []string{"n", "v", "sleep", "1"}, "n", "v", true, []string{"sleep", "1"}, defaultTTL},
		{"elect", []string{"n", "--", "sleep", "1"}, "n", "", false, []string{"sleep", "1"}, defaultTTL},
		{"elect", []string{"n", "--ttl", "2s", "v", "--", "true"}, "n", "v", true, []string{"true"}, 2 * time.Second},
		{"unlock", []string{"--force", "n", "12"}, "n", "12", true, nil, defaultTTL},
		{"unlock", []string{"n", "--force"}, "n", "", false, nil, defaultTTL},
		{"inspect", []string{"-o", "json", "n"}, "n", "", false, nil, defaultTTL},
	}
	for _, tt := range tests {
		c, err := parse(tt.verb, tt.args, env(nil))
		if err != nil {
			t.Errorf("parse(%s %q): %v", tt.verb, tt.args, err)
			continue
		}
		if c.name != tt.name || c.arg != tt.arg || c.hasArg != tt.hasArg || !reflect.DeepEqual(c.cmd, tt.cmd) || c.ttl != tt.ttl {
			t.Errorf("parse(%s %q) = name %q arg %q (%v) cmd %q ttl %v, want %q %q (%v) %q %v",
				tt.verb, tt.args, c.name, c.arg, c.hasArg, c.cmd, c.ttl, tt.name, tt.arg, tt.hasArg, tt.cmd, tt.ttl)
		}
	}
}

func TestParseUsageErrors(t *testing.T) {
	tests := []struct {
		verb string
		args []string
		env  map[string]string
	}{
		{"lock", nil, nil},
		{"lock", []string{"--nope", "n"}, nil},
		{"lock", []string{"n", "--"}, nil},
		{"lock", []string{"--backend", "consul", "n"}, nil},
		{"lock", []string{"--ttl", "0s", "n"}, nil},
		{"lock", []string{"--ttl", "2s", "--kill-grace", "2s", "n"}, nil},
		{"lock", []string{"--ttl", "2s", "n"}, map[string]string{"DISTSYNC_KILL_GRACE": "3s"}},
		{"lock", []string{"--wait", "-1s", "n"}, nil},
		{"lock", []string{"--min-hold", "-1s", "n"}, nil},
		{"lock", []string{"--conflict-exit-code", "256", "n"}, nil},
		{"lock", []string{"--log-level", "loud", "n"}, nil},
		{"lock", []string{"--cert", "c.pem", "n"}, nil},
		{"lock", []string{"--redis-master", "m", "n"}, nil},
		{"lock", []string{"--password-file", "/nonexistent/pw", "n"}, nil},
		{"lock", []string{"n"}, map[string]string{"DISTSYNC_TTL": "ten"}},
		{"inspect", []string{"-o", "yaml", "n"}, nil},
		{"inspect", []string{"n", "extra"}, nil},
		{"inspect", []string{"n", "--", "true"}, nil},
		{"sem", []string{"n"}, nil},
		{"sem", []string{"-n", "0", "n"}, nil},
		{"sem", []string{"-n", "2", "--weight", "3", "n"}, nil},
		{"unlock", []string{"n"}, nil},
		{"unlock", []string{"--force", "n", "1", "2"}, nil},
		{"lock", []string{"--force", "n"}, nil},
		{"frob", []string{"n"}, nil},
	}
	for _, tt := range tests {
		_, err := parse(tt.verb, tt.args, env(tt.env))
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parse(%s %q, env %v) = %v, want a usage error", tt.verb, tt.args, tt.env, err)
		}
		if got := exitCode(err, 171); err != nil && got != exitUsage {
			t.Errorf("exitCode(%v) = %d, want %d", err, got, exitUsage)
		}
	}
}

func TestParseHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"n", "-h"}} {
		if _, err := parse("lock", args, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parse(lock %q) = %v, want flag.ErrHelp", args, err)
		}
	}
}

func TestParseEnvironment(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"DISTSYNC_BACKEND":            "redis",
		"DISTSYNC_ENDPOINTS":          "a:1, b:2",
		"DISTSYNC_REDIS_MASTER":       "mymaster",
		"DISTSYNC_USER":               "u",
		"DISTSYNC_PASSWORD":           "from-env",
		"DISTSYNC_PREFIX":             "p/",
		"DISTSYNC_IDENTITY":           "me",
		"DISTSYNC_TTL":                "6s",
		"DISTSYNC_WAIT":               "2s",
		"DISTSYNC_TRY":                "true",
		"DISTSYNC_CONFLICT_EXIT_CODE": "9",
		"DISTSYNC_KILL_GRACE":         "1s",
		"DISTSYNC_MIN_HOLD":           "3s",
		"DISTSYNC_SHELL":              "1",
		"DISTSYNC_LOG_LEVEL":          "debug",
		"DISTSYNC_OUTPUT":             "json",
	}
	c, err := parse("lock", []string{"n", "--", "echo", "$DISTSYNC_TOKEN"}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		verb: "lock", backend: "redis", endpoints: []string{"a:1", "b:2"}, redisMaster: "mymaster",
		user: "u", password: "from-env", prefix: "p/", identity: "me", ttl: 6 * time.Second,
		wait: 2 * time.Second, try: true, conflict: 9, killGrace: time.Second, minHold: 3 * time.Second,
		shell: true, logLevel: -4, output: "json", name: "n",
		cmd: []string{"/bin/sh", "-c", "echo $DISTSYNC_TOKEN"},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("from the environment:\n got %+v\nwant %+v", *c, want)
	}

	// A flag beats its variable; the password file beats DISTSYNC_PASSWORD.
	c, err = parse("lock", []string{"--backend", "zookeeper", "--ttl", "4s", "--try=false", "--conflict-exit-code", "3",
		"--password-file", pwFile, "--redis-master", "", "-o", "text", "n"}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if c.backend != "zookeeper" || c.ttl != 4*time.Second || c.try || c.conflict != 3 || c.password != "from-file" || c.output != "text" {
		t.Errorf("flags over the environment: got backend %s ttl %v try %v conflict %d password %q output %s",
			c.backend, c.ttl, c.try, c.conflict, c.password, c.output)
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		args      []string
		endpoints []string
		killGrace time.Duration
	}{
		{[]string{"n"}, []string{"127.0.0.1:2379"}, 5 * time.Second},
		{[]string{"--backend", "redis", "n"}, []string{"127.0.0.1:6379"}, 5 * time.Second},
		{[]string{"--backend", "zookeeper", "n"}, []string{"127.0.0.1:2181"}, 5 * time.Second},
		// The default grace stays below a short TTL.
		{[]string{"--ttl", "2s", "n"}, []string{"127.0.0.1:2379"}, time.Second},
		{[]string{"--ttl", "2s", "--kill-grace", "1500ms", "n"}, []string{"127.0.0.1:2379"}, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		c, err := parse("lock", tt.args, env(nil))
		if err != nil {
			t.Fatalf("parse(%q): %v", tt.args, err)
		}
		if !reflect.DeepEqual(c.endpoints, tt.endpoints) || c.killGrace != tt.killGrace {
			t.Errorf("parse(%q): endpoints %v kill-grace %v, want %v %v", tt.args, c.endpoints, c.killGrace, tt.endpoints, tt.killGrace)
		}
		if c.conflict != 171 || c.output != "text" || c.wait != 0 || c.try || c.shell || c.cmd != nil {
			t.Errorf("parse(%q): unexpected defaults %+v", tt.args, c)
		}
	}
	c, err := parse("sem", []string{"n", "-n", "3"}, env(nil))
	if err != nil || c.limit != 3 || c.weight != 1 {
		t.Errorf("sem -n 3: %+v, %v; want limit 3 weight 1", c, err)
	}
	c, err = parse("sem", []string{"--limit", "3", "--weight", "2", "n"}, env(nil))
	if err != nil || c.limit != 3 || c.weight != 2 {
		t.Errorf("sem --limit 3 --weight 2: %+v, %v; want limit 3 weight 2", c, err)
	}
}
