package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// etcdctlLockName is the name of S9's reference entry.
const etcdctlLockName = "etcdctl lock"

var s9 = &scenario{
	id:    "S9",
	title: "CLI: lock + run `true` end to end",
	about: "A shell's view of a lock: `distsync lock NAME -- true` against `etcdctl lock NAME true` on etcd, " +
		"each timed from process start to exit (start, connect, session, acquire, fork and exec the command, " +
		"release, close), run one after the other on a free name. Both binaries are built once before the " +
		"first round. The headline is the median wall time of a round's runs. Lower is better.",
	headline: metric{"ms", "ms per run (median)", "%.1f", -1},
	metrics: []metric{
		{"p90", "p90 ms", "%.1f", -1},
	},
	jobs: func(p benchParams) []job {
		n := min(max(p.uncontendedCycles/5, 3), 60) // 60 runs each in a full run
		return []job{{backend: "etcd", timeout: time.Minute, entries: []entry{
			{name: "distsync", ours: true, note: "distsync lock NAME -- true", run: func(r *run) result {
				return cliRuns(r, n, func(bins cliBins, endpoints, name string) *exec.Cmd {
					cmd := exec.Command(bins.distsync, "lock", name, "--", "true")
					cmd.Env = append(os.Environ(), "DISTSYNC_BACKEND=etcd", "DISTSYNC_ENDPOINTS="+endpoints)
					return cmd
				})
			}},
			{name: etcdctlLockName, note: "etcdctl lock NAME true (etcd's own command, of this module's etcd version)", run: func(r *run) result {
				return cliRuns(r, n, func(bins cliBins, endpoints, name string) *exec.Cmd {
					return exec.Command(bins.etcdctl, "--endpoints="+endpoints, "lock", name, "true")
				})
			}},
		}}}
	},
}

// cliBins are the two commands S9 runs, built once per benchmark process
// and removed when its servers stop.
type cliBins struct{ distsync, etcdctl string }

var (
	cliBuildOnce sync.Once
	cliBuilt     cliBins
	cliBuildErr  error
)

func buildCLIs(e *env) (cliBins, error) {
	cliBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "distsync-bench-cli-")
		if err != nil {
			cliBuildErr = err
			return
		}
		e.stops = append(e.stops, func() { os.RemoveAll(dir) })
		b := cliBins{distsync: filepath.Join(dir, "distsync"), etcdctl: filepath.Join(dir, "etcdctl")}
		for pkg, out := range map[string]string{
			"github.com/distsync/distsync/cmd/distsync": b.distsync,
			"go.etcd.io/etcd/etcdctl/v3":                b.etcdctl,
		} {
			if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				cliBuildErr = fmt.Errorf("go build %s: %w: %s", pkg, err, msg)
				return
			}
		}
		cliBuilt = b
	})
	return cliBuilt, cliBuildErr
}

// cliRuns times n runs of the command that cmd makes, one after the
// other, each on a fresh name, after two untimed runs (the binary's pages
// in the cache).
func cliRuns(r *run, n int, cmd func(bins cliBins, endpoints, name string) *exec.Cmd) result {
	bins, err := buildCLIs(r.env)
	if err != nil {
		return failed(err)
	}
	endpoints := strings.Join(r.env.etcd.Endpoints(), ",")
	once := func() (time.Duration, error) {
		c := cmd(bins, endpoints, nextName("cli"))
		t0 := time.Now()
		out, err := c.CombinedOutput()
		took := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("%s: %w: %s", strings.Join(c.Args, " "), err, out)
		}
		return took, r.ctx.Err()
	}
	for range 2 {
		if _, err := once(); err != nil {
			return failed(err)
		}
	}
	var ds []time.Duration
	for range n {
		d, err := once()
		if err != nil {
			return failed(err)
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return failed(errors.New("no runs"))
	}
	slices.Sort(ds)
	return result{values: map[string]float64{
		"ms":  ms(percentile(ds, 0.5)),
		"p90": ms(percentile(ds, 0.9)),
	}}
}
