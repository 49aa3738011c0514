package zksync

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// The children of a name's node are its holders and waiters, named
// "_c_<guid>-<kind>-NNNNNNNNNN": go-zookeeper's protected prefix "_c_" and a
// GUID, so that a create whose answer was lost can find its node (see
// enqueue), the kind of acquisition, and the sequence number ZooKeeper
// appends, which orders the queue. go-zookeeper's zk.Lock and Curator name
// their nodes so too.

// A node is a parsed child of the name's node.
type node struct {
	name   string
	seq    int64
	kind   string // "lock", "read", "write", "permit", "latch", ...
	weight int64  // the permits it counts for: N for "permit.N", else 1
}

// seqDigits is the width of the sequence number ZooKeeper appends.
const seqDigits = 10

// parseNode reads a child name; any name ending in a sequence number is
// accepted (its kind is the text after the last '-' before the number).
// Other names do not take part in the queue.
func parseNode(name string) (node, bool) {
	if len(name) < seqDigits {
		return node{}, false
	}
	seq, err := strconv.ParseInt(name[len(name)-seqDigits:], 10, 64)
	if err != nil || seq < 0 {
		return node{}, false
	}
	rest := strings.TrimSuffix(name[:len(name)-seqDigits], "-")
	kind := rest[strings.LastIndexByte(rest, '-')+1:]
	n := node{name: name, seq: seq, kind: kind, weight: 1}
	if w, ok := strings.CutPrefix(kind, permitKind+"."); ok {
		if v, err := strconv.ParseInt(w, 10, 64); err == nil && v > 0 {
			n.weight = v
		}
	}
	return n, true
}

// sortNodes parses and sorts children by sequence number.
func sortNodes(children []string) []node {
	nodes := make([]node, 0, len(children))
	for _, c := range children {
		if n, ok := parseNode(c); ok {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b node) int { return int(a.seq - b.seq) })
	return nodes
}

// index returns the index of the node called name in nodes, or -1.
func index(nodes []node, name string) int {
	return slices.IndexFunc(nodes, func(n node) bool { return n.name == name })
}

// nodePrefix returns the path a new node of kind is created with under
// parent: ZooKeeper appends the sequence number.
func nodePrefix(parent, guid, kind string) string {
	return parent + "/_c_" + guid + "-" + kind + "-"
}

// guidPrefix is the start of the name of every node created with guid.
func guidPrefix(guid string) string { return "_c_" + guid + "-" }

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}
