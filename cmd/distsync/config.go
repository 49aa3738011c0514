package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// config is a verb's parsed command line and environment.
type config struct {
	verb string

	backend     string
	endpoints   []string
	redisMaster string
	cacert      string
	cert        string
	key         string
	user        string
	password    string
	prefix      string
	identity    string
	ttl         time.Duration
	wait        time.Duration
	try         bool
	conflict    int
	killGrace   time.Duration
	minHold     time.Duration
	shell       bool
	logLevel    slog.Level
	output      string

	limit  int64 // sem -n
	weight int64 // sem --weight
	force  bool  // unlock --force

	stdout, stderr io.Writer // where the verb writes (not the command)

	name   string   // NAME
	arg    string   // VALUE (elect) or HOLDER (unlock); "" when absent
	hasArg bool     // whether arg was given
	cmd    []string // the command; nil without one
}

// envFlag ties a flag to the environment variable that sets it when the
// flag is not on the command line.
type envFlag struct {
	flag, env string
}

// envFlags lists the common flags, in the order help shows them.
var envFlags = []envFlag{
	{"backend", "DISTSYNC_BACKEND"},
	{"endpoints", "DISTSYNC_ENDPOINTS"},
	{"redis-master", "DISTSYNC_REDIS_MASTER"},
	{"cacert", "DISTSYNC_CACERT"},
	{"cert", "DISTSYNC_CERT"},
	{"key", "DISTSYNC_KEY"},
	{"user", "DISTSYNC_USER"},
	{"password-file", "DISTSYNC_PASSWORD_FILE"},
	{"prefix", "DISTSYNC_PREFIX"},
	{"identity", "DISTSYNC_IDENTITY"},
	{"ttl", "DISTSYNC_TTL"},
	{"wait", "DISTSYNC_WAIT"},
	{"try", "DISTSYNC_TRY"},
	{"conflict-exit-code", "DISTSYNC_CONFLICT_EXIT_CODE"},
	{"kill-grace", "DISTSYNC_KILL_GRACE"},
	{"min-hold", "DISTSYNC_MIN_HOLD"},
	{"shell", "DISTSYNC_SHELL"},
	{"log-level", "DISTSYNC_LOG_LEVEL"},
	{"output", "DISTSYNC_OUTPUT"},
}

// passwordEnv holds the password; there is no flag for it, so it never
// shows in a process listing.
const passwordEnv = "DISTSYNC_PASSWORD"

// Defaults that depend on other settings.
const (
	defaultTTL       = 10 * time.Second
	defaultKillGrace = 5 * time.Second
	defaultConflict  = 171
)

var defaultEndpoints = map[string]string{
	"etcd":      "127.0.0.1:2379",
	"redis":     "127.0.0.1:6379",
	"zookeeper": "127.0.0.1:2181",
}

// usageError is a bad command line or configuration: exit code 174.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// raw holds the flag values before validation.
type raw struct {
	backend, endpoints, redisMaster, cacert, cert, key, user string
	passwordFile, prefix, identity, logLevel, output         string
	ttl, wait, killGrace, minHold                            time.Duration
	try, shell, force                                        bool
	conflict                                                 int
	limit, weight                                            int64
}

// newFlagSet returns the FlagSet of verb, writing into r. Errors and help
// are reported by parse, not printed by the FlagSet.
func newFlagSet(verb string, r *raw) *flag.FlagSet {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&r.backend, "backend", "etcd", "backend: etcd, redis or zookeeper")
	fs.StringVar(&r.endpoints, "endpoints", "", "comma-separated server addresses (default 127.0.0.1:2379, :6379 or :2181 by backend)")
	fs.StringVar(&r.redisMaster, "redis-master", "", "Redis Sentinel master name (the endpoints are then Sentinels)")
	fs.StringVar(&r.cacert, "cacert", "", "TLS: file of the CA certificates that sign the servers'")
	fs.StringVar(&r.cert, "cert", "", "TLS: client certificate file")
	fs.StringVar(&r.key, "key", "", "TLS: client key file")
	fs.StringVar(&r.user, "user", "", "etcd user, Redis ACL user or ZooKeeper digest user (password from "+passwordEnv+" or --password-file)")
	fs.StringVar(&r.passwordFile, "password-file", "", "file holding the password (a trailing newline is trimmed)")
	fs.StringVar(&r.prefix, "prefix", "", "root prefix of the backend's keys (default: the backend's)")
	fs.StringVar(&r.identity, "identity", "", "holder identity (default host:pid)")
	fs.DurationVar(&r.ttl, "ttl", defaultTTL, "session TTL: how long a crashed holder keeps the lock")
	fs.DurationVar(&r.wait, "wait", 0, "give up acquiring after this long, with the conflict exit code (0: wait forever)")
	fs.BoolVar(&r.try, "try", false, "do not wait: exit with the conflict exit code if held elsewhere")
	fs.IntVar(&r.conflict, "conflict-exit-code", defaultConflict, "exit code for --try and --wait giving up")
	fs.DurationVar(&r.killGrace, "kill-grace", defaultKillGrace, "on loss, SIGKILL the command this long after SIGTERM; below the TTL; by default at most TTL/2")
	fs.DurationVar(&r.minHold, "min-hold", 0, "hold at least this long after acquiring, even if the command ends sooner")
	fs.BoolVar(&r.shell, "shell", false, "run the command as /bin/sh -c \"<words joined by spaces>\"")
	fs.StringVar(&r.logLevel, "log-level", "warn", "log level on stderr: error, warn, info or debug")
	fs.StringVar(&r.output, "output", "text", "output format of leader, observe and inspect: text or json")
	fs.StringVar(&r.output, "o", "text", "short for --output")
	switch verb {
	case "sem":
		fs.Int64Var(&r.limit, "limit", 0, "the semaphore's limit (required)")
		fs.Int64Var(&r.limit, "n", 0, "short for --limit")
		fs.Int64Var(&r.weight, "weight", 1, "permits to hold")
	case "unlock":
		fs.BoolVar(&r.force, "force", false, "required: release another process's lease")
	}
	return fs
}

// verbShape says which positional arguments a verb takes.
type verbShape struct {
	positional int  // NAME plus the optional VALUE/HOLDER
	command    bool // takes a command
}

var shapes = map[string]verbShape{
	"lock":    {1, true},
	"rlock":   {1, true},
	"wlock":   {1, true},
	"sem":     {1, true},
	"elect":   {2, true},
	"leader":  {1, false},
	"observe": {1, false},
	"inspect": {1, false},
	"unlock":  {2, false},
}

// parse reads verb's args and the environment (through getenv) into a
// config. It returns flag.ErrHelp for -h, a *usageError otherwise.
func parse(verb string, args []string, getenv func(string) (string, bool)) (*config, error) {
	shape, ok := shapes[verb]
	if !ok {
		return nil, usagef("unknown verb %q", verb)
	}
	var r raw
	fs := newFlagSet(verb, &r)
	for _, ef := range envFlags {
		if v, ok := getenv(ef.env); ok && v != "" {
			if err := fs.Set(ef.flag, v); err != nil {
				return nil, usagef("%s=%q: %v", ef.env, v, err)
			}
		}
	}

	// Flags may come before NAME and between the positionals; stdlib
	// flag stops at the first positional, so parse again after each.
	var pos, cmd []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		left := fs.Args()
		if used := rest[:len(rest)-len(left)]; len(used) > 0 && used[len(used)-1] == "--" {
			if !shape.command {
				return nil, usagef("%s takes no command", verb)
			}
			if len(left) == 0 {
				return nil, usagef("no command after --")
			}
			cmd = left
			break
		}
		if len(left) == 0 {
			break
		}
		if len(pos) < shape.positional {
			pos = append(pos, left[0])
			rest = left[1:]
			continue
		}
		if !shape.command {
			return nil, usagef("unexpected argument %q", left[0])
		}
		cmd = left
		break
	}
	if len(pos) == 0 {
		return nil, usagef("missing NAME")
	}

	c := &config{verb: verb, name: pos[0], cmd: cmd}
	if len(pos) > 1 {
		c.arg, c.hasArg = pos[1], true
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := c.fill(&r, set, getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// fill validates r into c. set names the flags given on the command line
// or through the environment.
func (c *config) fill(r *raw, set map[string]bool, getenv func(string) (string, bool)) error {
	c.backend = r.backend
	def, ok := defaultEndpoints[c.backend]
	if !ok {
		return usagef("--backend %q: want etcd, redis or zookeeper", r.backend)
	}
	eps := r.endpoints
	if eps == "" {
		eps = def
	}
	for _, e := range strings.Split(eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.endpoints = append(c.endpoints, e)
		}
	}
	if len(c.endpoints) == 0 {
		return usagef("--endpoints %q: no address", r.endpoints)
	}
	if r.redisMaster != "" && c.backend != "redis" {
		return usagef("--redis-master applies to the redis backend only")
	}
	c.redisMaster = r.redisMaster
	if (r.cert == "") != (r.key == "") {
		return usagef("--cert and --key go together")
	}
	c.cacert, c.cert, c.key = r.cacert, r.cert, r.key
	c.user = r.user
	if pw, ok := getenv(passwordEnv); ok {
		c.password = pw
	}
	if r.passwordFile != "" {
		b, err := os.ReadFile(r.passwordFile)
		if err != nil {
			return usagef("--password-file: %v", err)
		}
		c.password = strings.TrimRight(string(b), "\r\n")
	}
	if c.password != "" && c.user == "" && c.backend != "redis" {
		return usagef("a password needs --user on %s", c.backend)
	}
	c.prefix, c.identity = r.prefix, r.identity

	if r.ttl <= 0 {
		return usagef("--ttl %v: want a positive duration", r.ttl)
	}
	c.ttl = r.ttl
	if r.wait < 0 {
		return usagef("--wait %v: want 0 (forever) or a positive duration", r.wait)
	}
	c.wait, c.try = r.wait, r.try
	if r.conflict < 0 || r.conflict > 255 {
		return usagef("--conflict-exit-code %d: want 0 to 255", r.conflict)
	}
	c.conflict = r.conflict
	c.killGrace = r.killGrace
	if !set["kill-grace"] {
		c.killGrace = min(defaultKillGrace, c.ttl/2)
	}
	if c.killGrace < 0 || c.killGrace >= c.ttl {
		return usagef("--kill-grace %v: want 0 or more and below the TTL %v", r.killGrace, c.ttl)
	}
	if r.minHold < 0 {
		return usagef("--min-hold %v: want 0 or more", r.minHold)
	}
	c.minHold, c.shell = r.minHold, r.shell
	if err := c.logLevel.UnmarshalText([]byte(r.logLevel)); err != nil {
		return usagef("--log-level %q: want error, warn, info or debug", r.logLevel)
	}
	switch r.output {
	case "text", "json":
		c.output = r.output
	default:
		return usagef("--output %q: want text or json", r.output)
	}

	switch c.verb {
	case "sem":
		if !set["limit"] && !set["n"] {
			return usagef("sem needs -n LIMIT")
		}
		if r.limit < 1 {
			return usagef("-n %d: want a limit of 1 or more", r.limit)
		}
		if r.weight < 1 || r.weight > r.limit {
			return usagef("--weight %d: want 1 to the limit %d", r.weight, r.limit)
		}
		c.limit, c.weight = r.limit, r.weight
	case "unlock":
		if !r.force {
			return usagef("unlock releases another process's lease: it needs --force")
		}
		c.force = true
	}
	if c.shell && c.cmd != nil {
		c.cmd = []string{"/bin/sh", "-c", strings.Join(c.cmd, " ")}
	}
	return nil
}
