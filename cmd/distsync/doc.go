/*
Distsync is flock(1) for a cluster: it runs a command while holding a
distributed lock, semaphore permit or leadership on etcd, Redis or
ZooKeeper, and stops the command when that is lost.

Install it with

	go install github.com/distsync/distsync/cmd/distsync@latest

or build it into ./bin with make build.

Usage:

	distsync VERB [flags] NAME [ARGS...] [-- CMD [ARGS...]]
	distsync help [VERB]
	distsync VERB -h
	distsync version

Flags may come before NAME and between NAME and "--". Everything after
"--" is the command. Without "--", the words after NAME (and after VALUE
for elect) are the command, and flag parsing stops at the first of them.
Flags are written --flag here; -flag works too.

# Verbs

	lock NAME [-- CMD...]
		Take the Mutex NAME. With CMD: run it, release, and exit with
		CMD's exit code. Without CMD: print the fencing token (one line)
		and hold until SIGINT, SIGTERM or SIGHUP (release, exit 0) or
		until the lock is lost (exit 172).
	rlock NAME [-- CMD...]
	wlock NAME [-- CMD...]
		Take a read (shared) or the write lease of the RWMutex NAME.
		rlock and wlock exclude each other. lock is another primitive:
		do not mix lock with rlock or wlock on one name.
	sem NAME -n LIMIT [--weight W] [-- CMD...]
		Take W permits (default 1) of the Semaphore NAME of LIMIT
		permits (-n or --limit, required). All users of NAME must give
		the same LIMIT; another one exits 174.
	elect NAME [VALUE] [-- CMD...]
		Campaign with VALUE (default: the identity). With CMD: run it
		while leading, and stop it when leadership is lost (exit 172).
		Without CMD: print the term and hold until signalled. With
		--try it gives up when someone leads, or when another candidate
		wins an empty election within 2 s.
	leader NAME
		Print the leader's value, or {"value":...,"term":...} with
		-o json. No leader: print nothing and exit 176.
	observe NAME
		Print every change of leader until signalled: "term=T value=V"
		or "none"; with -o json one object a line,
		{"term":T,"value":"V","none":false,"time":"RFC3339Nano"}.
	inspect NAME
		Print the holders and waiters of NAME as a table with the
		columns ROLE TOKEN IDENTITY MODE WEIGHT AGE TTL (ROLE is holder
		or waiter, waiters in queue order, "-" where the backend does
		not know), and a "limit: N" line for a semaphore. With -o json
		print the status as one JSON object: {"name":...,"limit":...,
		"holders":[{"token":...,"identity":...,"mode":...,"weight":...,
		"since":RFC3339 or omitted,"ttl_ms":...}],"waiters":[...]}.
	unlock --force NAME [HOLDER]
		Break-glass: release by force the holder or waiter HOLDER (a
		token, or an identity matching exactly one) of NAME. Without
		HOLDER the only holder is released; with several it exits 174
		and lists them. It logs the release on stderr. The holder's
		lease ends as lost, so its distsync stops its command and exits
		172. No such holder: exit 177. Without --force: exit 174.

# The command

The command runs without a shell, in a process group of its own, with
distsync's standard input, output and error. --shell runs it as
/bin/sh -c "<the command's words joined by spaces>". Its environment is
distsync's, without DISTSYNC_PASSWORD, plus:

	DISTSYNC_NAME     NAME
	DISTSYNC_TOKEN    the fencing token (the term for elect), decimal
	DISTSYNC_BACKEND  etcd, redis or zookeeper
	DISTSYNC_HOLDER   the holder identity

SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to distsync are forwarded to the
command's process group. A signal that comes while distsync waits to
acquire withdraws the wait, leaving nothing behind, and distsync exits
128+N.

When the lease is lost (its session expired or was revoked, its key was
deleted, its renewal failed, an operator ran unlock --force), distsync
logs "distsync: lost NAME (token T): <error>; stopping the command" and
sends SIGTERM to the whole process group at once. If the command has not
exited after --kill-grace, the group gets SIGKILL. Whatever is left of the
group when the command exits gets SIGKILL too, and distsync exits 172.
The loss is known when the lease's renewal fails or its state goes, which
is before the backend hands the lock on; fencing tokens cover the moments
in between.

Otherwise, when the command exits, distsync holds on until --min-hold has
passed since the acquisition, releases (within 5 s; a failed release is
logged and leaves the exit code alone), and exits with the command's exit
code: 128+N when signal N killed it, as shells report. The rest of the
process group is left alone then.

A command that reads the terminal is stopped (SIGTTIN): its process group
is not the terminal's foreground group.

# Flags

Each flag may also be set by its environment variable; a flag on the
command line beats the variable.

	--backend             DISTSYNC_BACKEND             etcd (default), redis or zookeeper
	--endpoints           DISTSYNC_ENDPOINTS           comma-separated addresses (default
	                                                   127.0.0.1:2379, :6379 or :2181)
	--redis-master        DISTSYNC_REDIS_MASTER        Redis Sentinel master name; the
	                                                   endpoints are then the Sentinels
	--cacert              DISTSYNC_CACERT              TLS: the servers' CA certificates
	--cert, --key         DISTSYNC_CERT, DISTSYNC_KEY  TLS: client certificate and key
	--user                DISTSYNC_USER                etcd user, Redis ACL user or
	                                                   ZooKeeper digest user
	(no flag)             DISTSYNC_PASSWORD            the password, never on the command line
	--password-file       DISTSYNC_PASSWORD_FILE       file holding the password (a trailing
	                                                   newline is trimmed); beats
	                                                   DISTSYNC_PASSWORD
	--prefix              DISTSYNC_PREFIX              root prefix of the keys (default: the
	                                                   backend's)
	--identity            DISTSYNC_IDENTITY            holder identity (default host:pid)
	--ttl                 DISTSYNC_TTL                 session TTL (default 10s): how long a
	                                                   crashed holder keeps the lock
	--wait                DISTSYNC_WAIT                give up acquiring after this long with
	                                                   the conflict exit code (default 0:
	                                                   wait forever); flock -w
	--try                 DISTSYNC_TRY                 do not wait; flock -n
	--conflict-exit-code  DISTSYNC_CONFLICT_EXIT_CODE  exit code of --try and --wait giving
	                                                   up (default 171); flock -E
	--kill-grace          DISTSYNC_KILL_GRACE          SIGTERM to SIGKILL delay on loss;
	                                                   below the TTL (default 5s, at most
	                                                   half the TTL)
	--min-hold            DISTSYNC_MIN_HOLD            hold at least this long after
	                                                   acquiring (default 0)
	--shell               DISTSYNC_SHELL               run the command with /bin/sh -c
	--log-level           DISTSYNC_LOG_LEVEL           error, warn (default), info or debug:
	                                                   the library's log on stderr
	-o, --output          DISTSYNC_OUTPUT              text (default) or json, for leader,
	                                                   observe and inspect

On ZooKeeper, the TTL is the session timeout, which the server must grant
as asked (its minSessionTimeout and maxSessionTimeout bound it); TLS goes
through a TLS dialer to the servers' secure client port; --user with the
password is sent as digest credentials. On etcd the TTL is whole seconds.
Opening the session is bounded by 10 s; a backend that cannot be reached
in that time exits 173.

# Exit codes

	N    the command's exit code (128+N when signal N killed it)
	0    success of a verb without a command
	171  conflict: --try found it held, or --wait elapsed
	     (--conflict-exit-code changes it)
	172  lost: the lease or leadership was lost while held; the command
	     was stopped
	173  backend error: unavailable, denied or closed
	174  usage or configuration error: bad flag, invalid name, bad TTL,
	     kill-grace not below the TTL, semaphore limit mismatch, ...
	175  the command could not be started
	176  leader: there is no leader
	177  unlock --force: no such holder

The reserved codes sit above the codes shells use for their own failures
and for signals (126 to 165) and below 255.
*/
package main
