package main

import (
	"fmt"
	"strings"
)

// verbUsage is each verb's synopsis and description.
var verbUsage = map[string]string{
	"lock": `usage: distsync lock [flags] NAME [-- CMD [ARGS...]]

Take the Mutex NAME. With CMD: run it while holding the lock, release, and
exit with CMD's exit code. Without CMD: print the fencing token and hold
until SIGINT, SIGTERM or SIGHUP (exit 0) or until the lock is lost (172).
lock is a different primitive from rlock/wlock: do not mix them on one name.
`,
	"rlock": `usage: distsync rlock [flags] NAME [-- CMD [ARGS...]]

Take a read (shared) lease of the RWMutex NAME; any number of rlock holders
exclude every wlock. Otherwise as lock.
`,
	"wlock": `usage: distsync wlock [flags] NAME [-- CMD [ARGS...]]

Take the write lease of the RWMutex NAME: it excludes rlock and wlock
holders. Otherwise as lock.
`,
	"sem": `usage: distsync sem [flags] NAME -n LIMIT [--weight W] [-- CMD [ARGS...]]

Take W permits (default 1) of the Semaphore NAME of LIMIT permits. Every
user of NAME must give the same LIMIT (a different one exits 174).
Otherwise as lock.

  -n, --limit LIMIT   the semaphore's limit (required)
  --weight W          permits to hold (default 1)
`,
	"elect": `usage: distsync elect [flags] NAME [VALUE] [-- CMD [ARGS...]]

Campaign in the election NAME with VALUE (default: the identity). With CMD:
run it while leading; when leadership is lost, stop it and exit 172.
Without CMD: print the term and hold until signalled. Without --, the word
after NAME is VALUE and the rest is the command.
`,
	"leader": `usage: distsync leader [flags] NAME

Print the value of NAME's leader (-o json: {"value":...,"term":...}).
With no leader print nothing and exit 176.
`,
	"observe": `usage: distsync observe [flags] NAME

Print every change of NAME's leader until signalled: "term=T value=V" or
"none" (-o json: one object a line with term, value, none and time).
`,
	"inspect": `usage: distsync inspect [flags] NAME

Print who holds and who waits for NAME: a table with the columns
ROLE TOKEN IDENTITY MODE WEIGHT AGE TTL (waiters in queue order; "-" where
the backend does not know), and "limit: N" for a semaphore. -o json prints
the status as one JSON object.
`,
	"unlock": `usage: distsync unlock --force [flags] NAME [HOLDER]

Break-glass: release another process's lease of NAME by force. HOLDER is a
token or an identity and must match one holder or waiter; without it the
only holder is released (several holders: exit 174). The holder's lease
ends as lost, so its distsync stops its command and exits 172. Exit 177
when no such holder.
`,
}

// verbHelp is the help of verb: its usage, then the common flags.
func verbHelp(verb string) string {
	return verbUsage[verb] + "\n" + flagHelp()
}

// flagHelp lists the common flags with their environment variables and
// defaults, from the flag definitions.
func flagHelp() string {
	var r raw
	fs := newFlagSet("help", &r)
	var b strings.Builder
	b.WriteString("Flags (each also from its environment variable; a flag beats the variable):\n")
	for _, ef := range envFlags {
		f := fs.Lookup(ef.flag)
		name := "--" + f.Name
		if f.Name == "output" {
			name = "-o, --output"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "0s" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(&b, "  %-22s %-28s %s%s\n", name, ef.env, f.Usage, def)
		if f.Name == "user" {
			fmt.Fprintf(&b, "  %-22s %-28s %s\n", "(no flag)", passwordEnv, "the password: never on the command line")
		}
	}
	return b.String()
}

const exitHelp = `Exit codes:
  N     the command's exit code (128+N when killed by signal N)
  0     success of a verb without a command
  171   conflict: --try found it held, or --wait elapsed (--conflict-exit-code)
  172   lost: the lease or leadership was lost while held; the command was stopped
  173   backend error: unavailable, denied or closed
  174   usage or configuration error
  175   the command could not be started
  176   leader: there is no leader
  177   unlock --force: no such holder
`

var mainHelp = `distsync: distributed locks for the shell, on etcd, Redis or ZooKeeper.

usage: distsync VERB [flags] NAME [ARGS...] [-- CMD [ARGS...]]
       distsync help [VERB] | distsync VERB -h | distsync version

Verbs:
  lock NAME [-- CMD...]           hold a mutex (run CMD under it, or print the token and hold)
  rlock NAME [-- CMD...]          hold a read lease of an RWMutex
  wlock NAME [-- CMD...]          hold the write lease of an RWMutex
  sem NAME -n LIMIT [-- CMD...]   hold --weight permits of a semaphore
  elect NAME [VALUE] [-- CMD...]  lead an election (run CMD while leading)
  leader NAME                     print the leader's value
  observe NAME                    print every change of leader
  inspect NAME                    show holders and waiters
  unlock --force NAME [HOLDER]    release a holder by force

The command runs without a shell (--shell for /bin/sh -c) in its own process
group, with DISTSYNC_NAME, DISTSYNC_TOKEN (the fencing token), DISTSYNC_BACKEND
and DISTSYNC_HOLDER in its environment. SIGINT, SIGTERM, SIGHUP and SIGQUIT are
forwarded to it. When the lease is lost, the group gets SIGTERM at once and
SIGKILL after --kill-grace, and distsync exits 172.

` + flagHelp() + "\n" + exitHelp
