package zksync

import "strconv"

// The kinds in node names. A Mutex's is go-zookeeper's zk.Lock's, so that
// the two exclude each other on one node; an Election's is Curator's
// LeaderLatch's.
const (
	lockKind   = "lock"
	readKind   = "read"
	writeKind  = "write"
	permitKind = "permit"
	latchKind  = "latch"
)

// A class is a kind of acquisition: the kind in its nodes' names and the
// rule saying which older nodes block it. blockers gets the sorted nodes,
// the index of the acquisition's own node (len(nodes) for one not yet
// created) and the limit a semaphore counts with, and returns the nodes to
// wait for: none when it holds. It must return only older nodes, and a set
// that a deletion below it does not change, so that watching exactly those
// nodes misses no grant.
type class struct {
	kind     string
	blockers func(nodes []node, me int, limit int64) []node
	// weight is the permits a semaphore acquisition takes (0 for other
	// classes).
	weight int64
	// limit, for a semaphore, checks the semaphore's stored limit, read
	// at every look, and returns the limit to count with.
	limit func(stored nodeRead) (int64, error)
	// chain, for a lock or a writer, has a waiter whose blocker is the
	// oldest node hold at that node's deletion, without a look: no
	// older node can come (see wait).
	chain bool
}

// exclusive waits for the next older node of any kind: a mutex, a writer,
// a candidate.
// A lock or a writer chains (see class.chain); a candidate reports
// leadership only after a look.
func exclusive(kind string) class {
	return class{kind: kind, chain: kind != latchKind, blockers: func(nodes []node, me int, _ int64) []node {
		if me == 0 {
			return nil
		}
		return nodes[me-1 : me]
	}}
}

// shared waits for the next older node that is not of its own kind: a
// reader waits for the next older writer only.
func shared(kind string) class {
	return class{kind: kind, blockers: func(nodes []node, me int, _ int64) []node {
		for i := me - 1; i >= 0; i-- {
			if nodes[i].kind != kind {
				return nodes[i : i+1]
			}
		}
		return nil
	}}
}

// permitsKind is the kind of a semaphore node taking n permits: "permit"
// for one, "permit.N" for N. The weight is in the name, not the data, so
// that a listing of the queue is all a waiter needs to count.
func permitsKind(n int64) string {
	if n == 1 {
		return permitKind
	}
	return permitKind + "." + strconv.FormatInt(n, 10)
}

// weighted holds when the older nodes' weights and its own n fit in the
// limit. Counting every older node, held or waiting, serves the queue in
// order: a waiting node holds back every later one, and the nodes that
// hold are a prefix of the queue whose weights fit in the limit. A waiter
// watches the shortest run of next older nodes that alone keeps it out: a
// deletion among them may admit it, and one below them leaves it out.
func weighted(n int64, limit func(nodeRead) (int64, error)) class {
	return class{kind: permitsKind(n), weight: n, limit: limit, blockers: func(nodes []node, me int, limit int64) []node {
		var sum int64
		for _, o := range nodes[:me] {
			sum += o.weight
		}
		if sum+n <= limit {
			return nil
		}
		sum = 0
		for k := me - 1; k >= 0; k-- {
			if sum += nodes[k].weight; sum+n > limit {
				return nodes[k:me]
			}
		}
		return nodes[:me] // n > limit: the caller checks
	}}
}
