package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIUsage: help and version exit 0; usage and configuration errors
// exit 174, with nothing run.
func TestCLIUsage(t *testing.T) {
	env := cliEtcd().direct()
	for _, args := range [][]string{{"help"}, {"help", "lock"}, {"lock", "-h"}, {"version"}} {
		if code, out, stderr := runCLI(t, env, args...); code != 0 || out == "" && stderr == "" {
			t.Errorf("distsync %s: exit %d, output %q %q; want 0 and some text", strings.Join(args, " "), code, out, stderr)
		}
	}
	ran := filepath.Join(t.TempDir(), "ran")
	name := cliName(t)
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{args: []string{}},
		{args: []string{"nosuchverb", name}},
		{args: []string{"lock"}},
		{args: []string{"lock", "--nosuchflag", name, "--", "touch", ran}},
		{args: []string{"lock", "--ttl", "bogus", name, "--", "touch", ran}},
		{args: []string{"lock", "--ttl", "5s", "--kill-grace", "5s", name, "--", "touch", ran}},
		{args: []string{"lock", "--kill-grace", "20s", name, "--", "touch", ran}, env: []string{"DISTSYNC_TTL=10s"}},
		{args: []string{"lock", name, "--", "touch", ran}, env: []string{"DISTSYNC_TTL=bogus"}},
		{args: []string{"lock", "--backend", "nosuchbackend", name, "--", "touch", ran}},
		{args: []string{"lock", "-o", "yaml", name, "--", "touch", ran}},
		{args: []string{"sem", name, "--", "touch", ran}},
		{args: []string{"sem", name, "-n", "0", "--", "touch", ran}},
		{args: []string{"unlock", name}},
		{args: []string{"leader"}},
		{args: []string{"lock", "", "--", "touch", ran}},
	} {
		code, _, stderr := runCLI(t, append(append([]string{}, env...), c.env...), c.args...)
		if code != exitUsage {
			t.Errorf("distsync %q (env %v): exit %d, want %d; stderr:\n%s", c.args, c.env, code, exitUsage, stderr)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("a usage error ran the command")
	}
}

// TestCLIPassword runs distsync against an etcd member with
// authentication on: the password comes from DISTSYNC_PASSWORD or from
// --password-file, never from argv; a wrong one is a backend error (173).
func TestCLIPassword(t *testing.T) {
	m := etcdAuthMember(t, "cli-user", "cli-secret", "cli/")
	env := []string{"DISTSYNC_BACKEND=etcd", "DISTSYNC_ENDPOINTS=" + strings.Join(m.Endpoints(), ","), "DISTSYNC_TTL=2s", "DISTSYNC_USER=cli-user"}
	name := "cli/" + t.Name()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("cli-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		env  []string
		args []string
		want int
	}{
		{"DISTSYNC_PASSWORD", []string{"DISTSYNC_PASSWORD=cli-secret"}, nil, 0},
		{"--password-file", nil, []string{"--password-file", pwFile}, 0},
		{"DISTSYNC_PASSWORD_FILE", []string{"DISTSYNC_PASSWORD_FILE=" + pwFile}, nil, 0},
		{"wrong password", []string{"DISTSYNC_PASSWORD=wrong"}, nil, exitBackend},
		{"no password", nil, nil, exitBackend},
	} {
		args := append(append([]string{"lock", "--try"}, c.args...), name, "--", "true")
		code, _, stderr := runCLI(t, append(append([]string{}, env...), c.env...), args...)
		if code != c.want {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", c.what, code, c.want, stderr)
		}
	}
}
