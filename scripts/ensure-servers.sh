#!/usr/bin/env bash
# ensure-servers.sh makes sure the real servers the tests start themselves are
# installed: redis-server and the ZooKeeper jar from Debian's zookeeper package.
# etcd needs nothing here: it runs embedded in the test process.
#
# The tests launch their own redis-server and ZooKeeperServerMain processes on
# loopback ports they choose, so any system service apt starts is irrelevant
# to them; we neither rely on it nor stop it.
set -euo pipefail

ZK_JAR=/usr/share/java/zookeeper.jar
PKGS=(redis-server zookeeper)

missing() {
	local m=()
	command -v redis-server >/dev/null 2>&1 || m+=("redis-server (command redis-server)")
	[[ -f "$ZK_JAR" ]] || m+=("zookeeper (file $ZK_JAR)")
	if ((${#m[@]} > 0)); then
		printf '%s\n' "${m[@]}"
	fi
}

need=$(missing)
if [[ -z "$need" ]]; then
	exit 0
fi

echo "ensure-servers: missing:" >&2
sed 's/^/  /' <<<"$need" >&2

if [[ $(id -u) -ne 0 ]]; then
	echo "ensure-servers: not root, cannot install. Run as root:" >&2
	echo "  apt-get update && apt-get install -y ${PKGS[*]}" >&2
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-servers: apt-get not found; install ${PKGS[*]} (redis-server binary and $ZK_JAR) by other means" >&2
	exit 1
fi

echo "ensure-servers: installing ${PKGS[*]} with apt-get" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${PKGS[@]}"

need=$(missing)
if [[ -n "$need" ]]; then
	echo "ensure-servers: still missing after apt-get install ${PKGS[*]}:" >&2
	sed 's/^/  /' <<<"$need" >&2
	exit 1
fi
echo "ensure-servers: ok" >&2
