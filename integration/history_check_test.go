package integration

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/distsync/distsync"
)

// The checks of the fenced histories (history_test.go): porcupine with a
// counter model where only accepted writes take effect, a direct walk over
// the accesses each register applied, and the outcome table.

// histIn and histOut are a critical section's porcupine input and output.
type histIn struct{ read, wrote int }
type histOut struct{ outcome outcome }

// counterModel is a counter where only accepted writes take effect: an
// accepted increment must have read the current value. Its partition cuts
// the history where no operation is in flight (porcupine's cache grows with
// the square of a partition's length, and a soak records hundreds of
// thousands of operations); at such a cut every linearization has applied
// exactly the accepted increments before it, so each piece is checked from
// 0 with its values lowered by that count, and the history is linearizable
// if and only if every piece is.
var counterModel = porcupine.Model{
	Partition: quiescentPieces,
	Init:      func() any { return 0 },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(histIn), output.(histOut)
		if out.outcome != accepted {
			return true, state
		}
		return in.read == state.(int) && in.wrote == in.read+1, in.wrote
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(histIn), output.(histOut)
		return fmt.Sprintf("%d->%d %v", in.read, in.wrote, out.outcome == accepted)
	},
}

// pieceLen is the length from which quiescentPieces cuts the history at
// the next point where no operation is in flight: pieces long enough that
// porcupine does not start a goroutine per operation, short enough that
// its cache stays small.
const pieceLen = 512

func quiescentPieces(history []porcupine.Operation) [][]porcupine.Operation {
	ops := append([]porcupine.Operation(nil), history...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var (
		pieces  [][]porcupine.Operation
		cur     []porcupine.Operation
		lastRet int64
		base, n int // accepted increments before the piece, and in it
	)
	for _, op := range ops {
		if len(cur) >= pieceLen && op.Call > lastRet {
			pieces = append(pieces, cur)
			cur, base, n = nil, base+n, 0
		}
		in := op.Input.(histIn)
		op.Input = histIn{read: in.read - base, wrote: in.wrote - base}
		if op.Output.(histOut).outcome == accepted {
			n++
		}
		cur = append(cur, op)
		lastRet = max(lastRet, op.Return)
	}
	if len(cur) > 0 {
		pieces = append(pieces, cur)
	}
	return pieces
}

// regResult is the verdict on one register's history.
type regResult struct {
	label                  string
	ops, writes, refused   int
	final                  int
	staleWrites, lostIncrs int // the direct check's findings
	linearizable           porcupine.CheckResult
}

// violations is the direct check's count: accepted writes with a stale
// token or a stale read, plus increments missing from the final value.
func (r regResult) violations() int { return r.staleWrites + r.lostIncrs }

// checkRegister checks one register's history with porcupine and directly.
func checkRegister(ctx context.Context, r register, timeout time.Duration) (regResult, error) {
	ops, accesses, final, err := r.result(ctx)
	if err != nil {
		return regResult{}, err
	}
	res := regResult{label: r.label(), ops: len(ops), final: final}
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.outcome != accepted {
			res.refused++
		}
		hist = append(hist, porcupine.Operation{
			ClientId: op.client, Call: op.call, Return: op.ret,
			Input: histIn{read: op.read, wrote: op.wrote}, Output: histOut{outcome: op.outcome},
		})
	}
	res.staleWrites, res.writes = directCheck(accesses)
	res.lostIncrs = res.writes - final
	res.linearizable = porcupine.CheckOperationsTimeout(counterModel, hist, timeout)
	return res, nil
}

// directCheck walks the accepted accesses in the order the register
// applied them and counts the accepted writes that used a token lower than
// the highest accepted before, or a read other than the value then
// current: each is a lost update (or a write a fence should have refused).
func directCheck(accesses []access) (stale, writes int) {
	var highest uint64
	cur := 0
	for _, a := range accesses {
		if a.write {
			writes++
			if a.token < highest || a.read != cur {
				stale++
			}
			cur = a.wrote
		}
		highest = max(highest, a.token)
	}
	return stale, writes
}

// faultCounts counts the faults the nemesis injected, by kind.
type faultCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *faultCounts) add(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[kind]++
}

func (f *faultCounts) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	kinds := make([]string, 0, len(f.n))
	for k := range f.n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, f.n[k])
	}
	return b.String()
}

// checkHistories checks every register of every workload, prints the
// outcome table of the backend, and fails t when a fenced history has a
// violation or is not linearizable, when the unfenced control caught
// nothing, or when a lease the nemesis ended was not told.
func checkHistories(t *testing.T, backend string, ws []*histWorkload, faults *faultCounts, elapsed time.Duration, notes ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		b                           strings.Builder
		acq, lossObs, caused, told  int64
		fencedViol, unfencedViol    int
		fencedIllegal, controlLegal int
	)
	fmt.Fprintf(&b, "\n=== fenced-history outcome: %s, %v ===\n", backend, elapsed.Round(time.Second))
	fmt.Fprintf(&b, "faults injected: %s\n", faults)
	fmt.Fprintf(&b, "%-10s %-9s %7s %8s %8s %7s %6s %10s %-9s\n",
		"primitive", "register", "acq", "accepted", "refused", "final", "viol", "lost-incr", "porcupine")
	for _, w := range ws {
		acq += w.acquired.Load()
		lossObs += w.lossObserved.Load()
		caused += w.targeted.Load()
		told += w.signalled.Load()
		for _, r := range w.regs {
			res, err := checkRegister(ctx, r, 2*time.Minute)
			if err != nil {
				t.Errorf("%s %s: %v", w.prim, r.label(), err)
				continue
			}
			fmt.Fprintf(&b, "%-10s %-9s %7d %8d %8d %7d %6d %10d %-9s\n",
				w.prim, res.label, w.acquired.Load(), res.writes, res.refused, res.final,
				res.staleWrites, res.lostIncrs, res.linearizable)
			if res.label == "unfenced" {
				unfencedViol += res.violations()
				if res.linearizable == porcupine.Ok {
					controlLegal++
				}
				continue
			}
			fencedViol += res.violations()
			if res.violations() != 0 {
				t.Errorf("%s, %s register: %d stale writes accepted, %d increments lost", w.prim, res.label, res.staleWrites, res.lostIncrs)
			}
			if res.linearizable != porcupine.Ok {
				fencedIllegal++
				t.Errorf("%s, %s register: porcupine says %s", w.prim, res.label, res.linearizable)
			}
			if res.writes == 0 {
				t.Errorf("%s, %s register: no write accepted", w.prim, res.label)
			}
		}
		if u := w.unsignalled.Load(); u != nil {
			t.Errorf("%s: a lease the nemesis ended was not told: %v", w.prim, u)
		}
	}
	fmt.Fprintf(&b, "acquisitions %d; violations with fencing %d (must be 0); violations without fencing %d (expected > 0)\n",
		acq, fencedViol, unfencedViol)
	fmt.Fprintf(&b, "loss signals observed (Done closed with ErrLost) %d; losses caused on purpose %d, of which told %d\n",
		lossObs, caused, told)
	for _, w := range ws {
		fmt.Fprintf(&b, "  %s: acquisitions %d, failed acquisitions %d (last: %v)\n", w.prim, w.acquired.Load(), w.failures.Load(), w.lastErr.Load())
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	t.Log(b.String())
	if os.Getenv("DISTSYNC_SOAK") != "" {
		fmt.Print(b.String() + "\n") // make soak prints up to the blank line
	}
	if unfencedViol == 0 {
		t.Errorf("the unfenced control lost no update: the check did not show it can fail")
	}
	if controlLegal == len(ws) {
		t.Errorf("porcupine found every unfenced history linearizable")
	}
	if caused != told {
		t.Errorf("%d leases ended on purpose, %d were told (ErrLost)", caused, told)
	}
}

// TestHistoryChecker runs the checks on made-up histories: a correct one
// passes, and each kind of violation is caught, by porcupine and directly.
func TestHistoryChecker(t *testing.T) {
	op := func(call, ret int64, read int, out outcome) porcupine.Operation {
		return porcupine.Operation{Call: call, Return: ret, Input: histIn{read: read, wrote: read + 1}, Output: histOut{outcome: out}}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential", []porcupine.Operation{op(0, 1, 0, accepted), op(2, 3, 1, accepted), op(4, 5, 2, accepted)}, porcupine.Ok},
		{"overlapping in either order", []porcupine.Operation{op(0, 10, 1, accepted), op(1, 2, 0, accepted), op(11, 12, 2, accepted)}, porcupine.Ok},
		{"rejected takes no effect", []porcupine.Operation{op(0, 1, 0, accepted), op(0, 9, 0, rejected), op(2, 3, 1, accepted)}, porcupine.Ok},
		{"lost update", []porcupine.Operation{op(0, 1, 0, accepted), op(2, 3, 1, accepted), op(2, 9, 1, accepted)}, porcupine.Illegal},
		{"stale write after a pause", []porcupine.Operation{op(0, 20, 0, accepted), op(5, 6, 0, accepted), op(7, 8, 1, accepted)}, porcupine.Illegal},
		{"violation in a later piece", []porcupine.Operation{op(0, 1, 0, accepted), op(2, 3, 1, accepted), op(4, 5, 1, accepted)}, porcupine.Illegal},
		{"read from the future", []porcupine.Operation{op(0, 1, 1, accepted), op(2, 3, 0, accepted)}, porcupine.Illegal},
	} {
		if got := porcupine.CheckOperationsTimeout(counterModel, tc.ops, 10*time.Second); got != tc.want {
			t.Errorf("%s: porcupine says %s, want %s", tc.name, got, tc.want)
		}
	}

	// Long histories are checked in pieces, each from its own base.
	seq := func(n int) []porcupine.Operation {
		ops := make([]porcupine.Operation, n)
		for i := range ops {
			ops[i] = op(int64(2*i), int64(2*i+1), i, accepted)
		}
		return ops
	}
	if n := len(quiescentPieces(seq(3 * pieceLen))); n != 3 {
		t.Errorf("%d ops in %d pieces, want 3", 3*pieceLen, n)
	}
	if got := porcupine.CheckOperationsTimeout(counterModel, seq(3*pieceLen), 10*time.Second); got != porcupine.Ok {
		t.Errorf("long sequential history: porcupine says %s", got)
	}
	late := seq(3 * pieceLen)
	late[2*pieceLen+5] = op(int64(2*(2*pieceLen+5)), int64(2*(2*pieceLen+5)+1), 2*pieceLen+3, accepted)
	if got := porcupine.CheckOperationsTimeout(counterModel, late, 10*time.Second); got != porcupine.Illegal {
		t.Errorf("a stale read in the third piece: porcupine says %s", got)
	}

	m := &memRegister{fenced: true}
	u := &memRegister{}
	lease := func(tok uint64) distsync.Lease { return tokenLease(tok) }
	for _, r := range []*memRegister{m, u} {
		// Holder 1 reads, pauses; holder 2 reads and writes; holder 1
		// wakes and writes its stale increment.
		v1, ok1 := r.read(context.Background(), nil, lease(1))
		v2, _ := r.read(context.Background(), nil, lease(2))
		r.write(context.Background(), nil, lease(2), &histOp{read: v2, wrote: v2 + 1})
		if ok1 {
			r.write(context.Background(), nil, lease(1), &histOp{read: v1, wrote: v1 + 1})
		}
	}
	if stale, writes := directCheck(m.accesses); stale != 0 || writes != m.value {
		t.Errorf("fenced register: %d stale writes, %d writes, value %d", stale, writes, m.value)
	}
	if stale, writes := directCheck(u.accesses); stale != 1 || writes-u.value != 1 {
		t.Errorf("unfenced register: %d stale writes (want 1), %d increments lost (want 1)", stale, writes-u.value)
	}
}

// tokenLease is a lease that is only a token, for the checker's own test.
type tokenLease uint64

func (l tokenLease) Token() uint64               { return uint64(l) }
func (tokenLease) Done() <-chan struct{}         { return nil }
func (tokenLease) Err() error                    { return nil }
func (tokenLease) Release(context.Context) error { return nil }
