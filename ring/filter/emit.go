package filter

import (
	"container/heap"
	"fmt"
	"sync/atomic"

	"golang.org/x/net/bpf"
)

// From the boolean tree to BPF: jumping code over basic blocks (each test
// a block whose true and false edges go to the blocks of what follows),
// then two passes in the spirit of libpcap's optimizer, then layout.
//
//   - Threading: an edge into a test whose outcome is already known on
//     that edge (the false edge of "type == IPv6" into "type == IPv4")
//     goes straight to that outcome's successor.
//   - Reuse: a load of a value A or X already holds on every path into
//     the block is dropped ("ldh [12]" once for both IP versions).
//
// Neither changes which frames match: a skipped test's value was loaded
// before on that path, so the skipped load could not have run past the
// frame either.

// maxInsns is BPF_MAXINSNS, the kernel's limit on a classic program.
const maxInsns = 4096

type block struct {
	stmts []bpf.Instruction
	cond  bpf.JumpTest
	k     uint32
	x     bool
	jt    *block
	jf    *block

	ret    bool // a return: val is the accept length (0: reject)
	val    uint32
	jumpTo *block // an unconditional jump (a trampoline)

	key akey // the value the test compares, if knowable
	seq int  // place in the source, for layout

	// Scratch for pullups: place in topological order, immediate
	// dominator, in-edges.
	idx   int
	idom  *block
	ins   []inEdge
	mark  int64 // graph walks: visited in the walk with this mark
	indeg int
	level int
}

// akey names a value a load leaves in a register, so equal loads can be
// recognized. Only packet data, the frame length and ancillary data get a
// key: they cannot change while the program runs.
type akey struct {
	kind uint8 // kAbs, kInd, kMsh, kLenKey, kExt; 0: unknown
	size uint8
	off  uint32
	xoff uint32 // kInd: X is 4*([xoff]&0xf)
	mask uint32 // non-zero: the value ANDed with mask
	vn   string // keyExpr: the comparison's arithmetic, as written
}

const (
	keyNone uint8 = iota
	keyAbs
	keyInd
	keyMsh
	keyLen
	keyExt
	keyExpr
)

type emitter struct {
	blocks []*block // in creation order: successors before predecessors
}

func (e *emitter) build(n node, t, f *block) *block {
	switch n := n.(type) {
	case nConst:
		if n {
			return t
		}
		return f
	case nNot:
		return e.build(n.a, f, t)
	case nAnd:
		return e.build(n.a, e.build(n.b, t, f), f)
	case nOr:
		return e.build(n.a, t, e.build(n.b, t, f))
	case nTest:
		if t == f {
			// Both outcomes lead to the same place: the test is dead, and
			// so are its loads (libpcap's optimizer removes them too).
			return t
		}
		b := &block{stmts: n.stmts, cond: n.cond, k: n.k, x: n.x, jt: t, jf: f}
		if n.vn != "" {
			b.key = akey{kind: keyExpr, vn: n.vn}
		} else {
			b.key = testKey(b)
		}
		e.blocks = append(e.blocks, b)
		return b
	}
	panic(fmt.Sprintf("filter: unexpected node %T", n))
}

// emit compiles the tree into a program returning snaplen on a match.
func emit(root node, snaplen uint32) ([]bpf.RawInstruction, error) {
	acc := &block{ret: true, val: snaplen}
	rej := &block{ret: true, val: 0}
	var e emitter
	entry := e.build(root, acc, rej)
	// Creation order is bottom-up; a block's place in the source is the
	// reverse, which topo keeps where it can.
	for i, b := range e.blocks {
		b.seq = len(e.blocks) - i
	}
	acc.seq, rej.seq = len(e.blocks)+1, len(e.blocks)+2

	budget := maxPullups
	for range 100 {
		changed := thread(topo(entry), entry)
		entry = skipDead(topo(entry), entry)
		if pullups(entry, &budget) {
			changed = true
		}
		if !changed {
			break
		}
	}
	order := topo(entry)
	reuse(order, entry)
	return layout(order)
}

// testKey is the value a self-contained test compares: its stmts only
// load (and mask) one value.
func testKey(b *block) akey {
	if b.ret || b.x {
		return akey{}
	}
	var a, x akey
	for _, s := range b.stmts {
		a, x = step(s, a, x)
	}
	return a
}

// step is the effect of one instruction on what A and X hold.
func step(s bpf.Instruction, a, x akey) (akey, akey) {
	switch s := s.(type) {
	case bpf.LoadAbsolute:
		return akey{kind: keyAbs, size: uint8(s.Size), off: s.Off}, x
	case bpf.LoadIndirect:
		if x.kind == keyMsh {
			return akey{kind: keyInd, size: uint8(s.Size), off: s.Off, xoff: x.off}, x
		}
		return akey{}, x
	case bpf.LoadMemShift:
		return a, akey{kind: keyMsh, off: s.Off}
	case bpf.LoadExtension:
		if s.Num == bpf.ExtLen {
			return akey{kind: keyLen}, x
		}
		return akey{kind: keyExt, off: uint32(s.Num)}, x
	case bpf.ALUOpConstant:
		if s.Op == bpf.ALUOpAnd && a.kind != keyNone && a.mask == 0 && s.Val != 0 {
			a.mask = s.Val
			return a, x
		}
		return akey{}, x
	case bpf.TAX:
		return a, a
	case bpf.TXA:
		return x, x
	case bpf.StoreScratch:
		return a, x
	case bpf.LoadConstant:
		if s.Dst == bpf.RegX {
			return a, akey{}
		}
		return akey{}, x
	case bpf.LoadScratch:
		if s.Dst == bpf.RegX {
			return a, akey{}
		}
		return akey{}, x
	}
	return akey{}, x
}

// facts are what is known, on one edge, about values tested before it:
// the value itself, or the outcomes of tests on it.
type fact struct {
	eq   bool
	v    uint32
	seen []seenTest
}

type seenTest struct {
	cond   bpf.JumpTest
	k      uint32
	x      bool
	result bool
}

type facts map[akey]fact

func (fs facts) with(k akey, f fact) facts {
	out := make(facts, len(fs)+1)
	for kk, v := range fs {
		out[kk] = v
	}
	old, ok := out[k]
	switch {
	case ok && old.eq:
		return out // the value says everything
	case ok && !f.eq:
		f.seen = append(append([]seenTest(nil), old.seen...), f.seen...)
	}
	out[k] = f
	return out
}

// meet keeps what holds on both edges.
func meet(a, b facts) facts {
	out := facts{}
	for k, fa := range a {
		fb, ok := b[k]
		if !ok {
			continue
		}
		if fa.eq && fb.eq && fa.v == fb.v {
			out[k] = fa
			continue
		}
		var seen []seenTest
		for _, s := range fa.seen {
			if fb.knows(s) {
				seen = append(seen, s)
			}
		}
		for _, s := range fb.seen {
			if fa.knows(s) {
				seen = append(seen, s)
			}
		}
		if len(seen) > 0 {
			out[k] = fact{seen: seen}
		}
	}
	return out
}

// knows reports whether f implies test s's result.
func (f fact) knows(s seenTest) bool {
	r, ok := f.outcome(s.cond, s.k, s.x)
	return ok && r == s.result
}

func (f fact) outcome(cond bpf.JumpTest, k uint32, x bool) (result, known bool) {
	if f.eq && !x {
		return compare(cond, f.v, k), true
	}
	for _, s := range f.seen {
		if s.cond == cond && s.k == k && s.x == x {
			return s.result, true
		}
		if !x && !s.x && cond == bpf.JumpEqual && s.cond == bpf.JumpEqual && s.k != k && s.result {
			return false, true
		}
	}
	return false, false
}

// edgeFacts adds what taking b's true (or false) edge says about b's value.
func edgeFacts(b *block, in facts, taken bool) facts {
	if b.key.kind == keyNone {
		return in
	}
	if taken && b.cond == bpf.JumpEqual && !b.x {
		return in.with(b.key, fact{eq: true, v: b.k})
	}
	return in.with(b.key, fact{seen: []seenTest{{b.cond, b.k, b.x, taken}}})
}

// outcome is b's result when in says enough about its value.
func outcome(b *block, in facts) (result, known bool) {
	if b.ret || b.jumpTo != nil || b.key.kind == keyNone {
		return false, false
	}
	f, ok := in[b.key]
	if !ok {
		return false, false
	}
	return f.outcome(b.cond, b.k, b.x)
}

// thread redirects every edge whose target's outcome is known on it.
func thread(order []*block, entry *block) bool {
	in := map[*block]facts{entry: {}}
	changed := false
	for _, b := range order {
		fs, ok := in[b]
		if !ok || b.ret {
			continue
		}
		for _, taken := range []bool{true, false} {
			ef := edgeFacts(b, fs, taken)
			t := &b.jf
			if taken {
				t = &b.jt
			}
			for {
				r, known := outcome(*t, ef)
				if !known {
					break
				}
				next := (*t).jf
				if r {
					next = (*t).jt
				}
				ef = edgeFacts(*t, ef, r)
				*t = next
				changed = true
			}
			if prev, ok := in[*t]; ok {
				in[*t] = meet(prev, ef)
			} else {
				in[*t] = ef
			}
		}
		if b.jt == b.jf {
			changed = true // threading made the test dead
		}
	}
	return changed
}

// skipDead points every edge past tests whose two edges meet.
func skipDead(order []*block, entry *block) *block {
	skip := func(b *block) *block {
		for !b.ret && b.jt == b.jf {
			b = b.jt
		}
		return b
	}
	for _, b := range order {
		if !b.ret {
			b.jt, b.jf = skip(b.jt), skip(b.jf)
		}
	}
	return skip(entry)
}

// topo lists the blocks reachable from entry so that every edge goes
// forward, keeping source order (seq) where the edges allow.
func topo(entry *block) []*block {
	gen := nextMark()
	var all []*block
	var visit func(b *block)
	visit = func(b *block) {
		if b.mark == gen {
			return
		}
		b.mark, b.indeg = gen, 0
		all = append(all, b)
		if !b.ret {
			visit(b.jt)
			visit(b.jf)
		}
	}
	visit(entry)
	for _, b := range all {
		if !b.ret {
			b.jt.indeg++
			b.jf.indeg++
		}
	}
	ready := &blockHeap{entry}
	order := make([]*block, 0, len(all))
	for ready.Len() > 0 {
		b := heap.Pop(ready).(*block)
		order = append(order, b)
		if b.ret {
			continue
		}
		for _, s := range []*block{b.jt, b.jf} {
			s.indeg--
			if s.indeg == 0 {
				heap.Push(ready, s)
			}
		}
	}
	return order
}

// marks tell one graph walk's visited blocks from an earlier walk's.
var markCounter atomic.Int64

func nextMark() int64 { return markCounter.Add(1) }

type blockHeap []*block

func (h blockHeap) Len() int           { return len(h) }
func (h blockHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h blockHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *blockHeap) Push(x any)        { *h = append(*h, x.(*block)) }
func (h *blockHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}

// pullups applies libpcap's or_pullup and and_pullup until neither
// applies. In a chain of tests that all jump to the same place on true
// (an "or" chain), a test of the value A already held on entry is moved
// up ahead of the first test of another value, where its load is free.
// The move changes which tests run before a match: on a frame cut short,
// a test that libpcap skips cannot reject the frame, so it is copied here
// to get libpcap's verdict, not only its speed.
func pullups(entry *block, budget *int) bool {
	changed := false
	for *budget > 0 {
		order := topo(entry)
		for i, b := range order {
			b.idx, b.ins = i, b.ins[:0]
		}
		for _, b := range order {
			if !b.ret {
				b.jt.ins = append(b.jt.ins, inEdge{b, &b.jt})
				b.jf.ins = append(b.jf.ins, inEdge{b, &b.jf})
			}
		}
		// Immediate dominators, in one pass as the graph is acyclic.
		entry.idom = entry
		for _, b := range order[1:] {
			var d *block
			for _, e := range b.ins {
				p := e.pred
				if d == nil {
					d = p
					continue
				}
				for d != p {
					for d.idx > p.idx {
						d = d.idom
					}
					for p.idx > d.idx {
						p = p.idom
					}
				}
			}
			b.idom = d
		}
		did := false
		for _, b := range byLevel(entry) {
			if pullup(b, true) || pullup(b, false) {
				did = true
				break
			}
		}
		if !did {
			return changed
		}
		changed = true
		*budget--
	}
	return changed
}

// maxPullups bounds the pullups of one compilation. Each moves a test one
// place up a chain, and a long "port 1 or 2 or ..." takes quadratically
// many; past the bound the program is still right, only a frame cut
// short may get another verdict than from libpcap.
const maxPullups = 2000

type inEdge struct {
	pred  *block
	field **block
}

func dominates(a, b *block) bool {
	for b.idx > a.idx {
		b = b.idom
	}
	return a == b
}

// pullup is or_pullup (isOr) or and_pullup for block b, on the in-edges
// and dominators pullups computed.
func pullup(b *block, isOr bool) bool {
	edges := b.ins
	if len(edges) == 0 {
		return false
	}
	val := edges[0].pred.key
	if val.kind == keyNone {
		return false
	}
	for _, e := range edges[1:] {
		if e.pred.key != val {
			return false
		}
	}
	next := func(c *block) **block {
		if isOr {
			return &c.jf
		}
		return &c.jt
	}
	exit := func(c *block) *block {
		if isOr {
			return c.jt
		}
		return c.jf
	}
	inChain := func(c *block) bool {
		return !c.ret && exit(c) == exit(b) && dominates(b, c)
	}
	diffp := edges[0].field
	atTop := true
	for {
		c := *diffp
		if !inChain(c) {
			return false
		}
		if c.key != val {
			break
		}
		diffp = next(c)
		atTop = false
	}
	samep := next(*diffp)
	for {
		c := *samep
		if !inChain(c) {
			return false
		}
		if c.key == val {
			break
		}
		samep = next(c)
	}
	pull := *samep
	*samep = *next(pull)
	*next(pull) = *diffp
	if atTop {
		for _, e := range edges {
			*e.field = pull
		}
	} else {
		*diffp = pull
	}
	return true
}

// byLevel lists the tests as libpcap's find_levels orders them: by
// height above the returns, lowest first, and within a height in the
// reverse of a depth-first finishing order.
func byLevel(entry *block) []*block {
	gen := nextMark()
	var levels [][]*block
	var visit func(b *block)
	visit = func(b *block) {
		if b.mark == gen {
			return
		}
		b.mark, b.level = gen, 0
		if !b.ret {
			visit(b.jt)
			visit(b.jf)
			b.level = max(b.jt.level, b.jf.level) + 1
		}
		for len(levels) <= b.level {
			levels = append(levels, nil)
		}
		levels[b.level] = append(levels[b.level], b)
	}
	visit(entry)
	var out []*block
	for _, l := range levels[min(1, len(levels)):] {
		for i := len(l) - 1; i >= 0; i-- {
			out = append(out, l[i])
		}
	}
	return out
}

// reuse drops loads whose value A or X already holds on every path in.
func reuse(order []*block, entry *block) {
	type regs struct{ a, x akey }
	in := map[*block]regs{entry: {}}
	seen := map[*block]bool{entry: true}
	join := func(b *block, r regs) {
		if !seen[b] {
			seen[b] = true
			in[b] = r
			return
		}
		old := in[b]
		if old.a != r.a {
			old.a = akey{}
		}
		if old.x != r.x {
			old.x = akey{}
		}
		in[b] = old
	}
	for _, b := range order {
		if b.ret {
			continue
		}
		r := in[b]
		kept := b.stmts[:0:0]
		for _, s := range b.stmts {
			a, x := step(s, r.a, r.x)
			redundant := false
			switch s.(type) {
			case bpf.LoadAbsolute, bpf.LoadIndirect, bpf.LoadExtension:
				redundant = a.kind != keyNone && a == r.a
			case bpf.LoadMemShift:
				redundant = x == r.x
			}
			if !redundant {
				kept = append(kept, s)
			}
			r.a, r.x = a, x
		}
		b.stmts = kept
		join(b.jt, r)
		join(b.jf, r)
	}
}

// layout places the blocks in order and encodes them. A conditional jump
// reaches at most 255 instructions ahead; a farther target gets a
// trampoline right after the jump: a copy of the return it goes to, or an
// unconditional jump.
func layout(order []*block) ([]bpf.RawInstruction, error) {
	size := func(b *block) int { return len(b.stmts) + 1 }
	for {
		pos := map[*block]int{}
		n := 0
		for _, b := range order {
			pos[b] = n
			n += size(b)
		}
		if n > maxInsns {
			return nil, fmt.Errorf("filter: program too long (%d instructions, BPF allows %d)", n, maxInsns)
		}
		fixed := false
		for i, b := range order {
			if b.ret || b.jumpTo != nil {
				continue
			}
			from := pos[b] + size(b)
			for _, t := range []**block{&b.jt, &b.jf} {
				if pos[*t]-from <= 255 {
					continue
				}
				tr := &block{jumpTo: *t}
				if (*t).ret {
					tr = &block{ret: true, val: (*t).val}
				}
				// After b and any trampolines already placed for it.
				j := i + 1
				for j < len(order) && (order[j].jumpTo != nil || order[j].ret) && pos[order[j]] < from+2 {
					j++
				}
				order = append(order[:j], append([]*block{tr}, order[j:]...)...)
				*t = tr
				fixed = true
				break
			}
			if fixed {
				break
			}
		}
		if fixed {
			continue
		}
		var prog []bpf.RawInstruction
		for _, b := range order {
			for _, s := range b.stmts {
				ri, err := s.Assemble()
				if err != nil {
					return nil, fmt.Errorf("filter: internal error: %v", err)
				}
				prog = append(prog, ri)
			}
			var last bpf.Instruction
			from := pos[b] + size(b)
			switch {
			case b.ret:
				last = bpf.RetConstant{Val: b.val}
			case b.jumpTo != nil:
				last = bpf.Jump{Skip: uint32(pos[b.jumpTo] - from)}
			case b.x:
				last = bpf.JumpIfX{Cond: b.cond, SkipTrue: uint8(pos[b.jt] - from), SkipFalse: uint8(pos[b.jf] - from)}
			default:
				last = bpf.JumpIf{Cond: b.cond, Val: b.k, SkipTrue: uint8(pos[b.jt] - from), SkipFalse: uint8(pos[b.jf] - from)}
			}
			ri, err := last.Assemble()
			if err != nil {
				return nil, fmt.Errorf("filter: internal error: %v", err)
			}
			prog = append(prog, ri)
		}
		return prog, nil
	}
}
