package filter

import "fmt"

// The parser follows libpcap's grammar.y rule for rule, as a packrat
// (memoizing, backtracking) parser: where yacc decides between two rules
// by the following token, this tries them in an order that picks the same
// one. It only builds a syntax tree; gen walks the tree left to right,
// which is the order in which yacc runs its actions, so compile-time state
// that libpcap mutates as it goes (the offsets "vlan" shifts, the
// qualifiers a bare "443" inherits) comes out the same.

// Syntax tree. Boolean nodes serve both for expressions and for the
// lists of bare ids in "port 80 or (443 or 8080)".
type (
	sAnd struct{ l, r sx }
	sOr  struct{ l, r sx }
	sNot struct{ x sx }
	// sHeadID is "head id": qualifiers and the address they qualify.
	sHeadID struct {
		q  qual
		id sx
	}
	// sParen is a parenthesized expression: the qualifiers a later bare
	// id inherits are those from before the parenthesis.
	sParen struct{ x sx }
	// sPname is a protocol name on its own ("tcp").
	sPname struct{ tok token }
	sRel   struct {
		op   token
		l, r sx // arithmetic
	}
	// sOther is less, greater, vlan, broadcast, multicast.
	sOther struct {
		tok   token  // the keyword
		pqual *token // protocol before broadcast/multicast
		arg   *token // number after less, greater, vlan
	}

	// Ids.
	sNum  struct{ tok token }
	sName struct{ tok token } // kID
	sHID  struct {
		tok  token
		mask *token // "mask" HID
		bits *token // "/" NUM
	}
	sHID6 struct {
		tok  token
		bits *token
	}
	sEID struct{ tok token }

	// Arithmetic.
	sLoad struct {
		proto token
		idx   sx
		size  *token
	}
	sLen struct{ tok token }
	sBin struct {
		op   token
		l, r sx
	}
	sNeg struct {
		op token
		x  sx
	}
)

type sx any

// Qualifier values, libpcap's Q_* in gencode.h.
type qproto uint8

const (
	pDefault qproto = iota
	pUndef
	pLink
	pIP
	pIP6
	pARP
	pRARP
	pTCP
	pUDP
	pSCTP
	pICMP
	pICMP6
	pIGMP
	pIGRP
	pPIM
	pVRRP
	pCARP
	pAH
	pESP
)

type qdir uint8

const (
	dDefault qdir = iota
	dUndef
	dSrc
	dDst
	dOr
	dAnd
)

type qaddr uint8

const (
	aDefault qaddr = iota
	aUndef
	aHost
	aNet
	aPort
	aPortrange
	aProto
)

// qual is the qualifiers that apply to an id, with the tokens that set
// them so errors can point at them.
type qual struct {
	proto    qproto
	dir      qdir
	addr     qaddr
	protoTok *token
	addrTok  *token
}

// qerr is what a term without qualifiers leaves for the bare ids after it:
// any such id is an error.
var qerr = qual{proto: pUndef, dir: dUndef, addr: aUndef}

var pnames = map[kind]qproto{
	kLink: pLink, kIP: pIP, kIP6: pIP6, kARP: pARP, kRARP: pRARP,
	kTCP: pTCP, kUDP: pUDP, kSCTP: pSCTP, kICMP: pICMP, kICMP6: pICMP6,
	kIGMP: pIGMP, kIGRP: pIGRP, kPIM: pPIM, kVRRP: pVRRP, kCARP: pCARP,
	kAH: pAH, kESP: pESP,
}

type memoKey struct {
	rule uint8
	pos  int
	arg  int
}

type memoVal struct {
	n   sx
	end int
	ok  bool
}

const (
	ruleExpr uint8 = iota
	ruleTerm
	ruleID
	rulePnum
	ruleArith
)

type parser struct {
	toks []token
	far  int // furthest token a rule failed at: where the syntax error is
	memo map[memoKey]memoVal
}

// maxTokens and maxDepth bound the work and the recursion an expression
// can cause; real filters are a few dozen tokens.
const (
	maxTokens = 4096
	maxDepth  = 100
)

func parse(toks []token) (sx, error) {
	if len(toks) > maxTokens {
		return nil, fmt.Errorf("filter: expression too long (%d tokens, at most %d)", len(toks)-1, maxTokens)
	}
	depth := 0
	for _, t := range toks {
		switch t.kind {
		case kLParen, kLBrack:
			depth++
			if depth > maxDepth {
				return nil, fmt.Errorf("filter: brackets at column %d nested more than %d deep", t.col(), maxDepth)
			}
		case kRParen, kRBrack:
			depth--
		}
	}
	// Rules look up to two tokens ahead; padding with end tokens keeps
	// every look inside the slice.
	eof := toks[len(toks)-1]
	last := len(toks) - 1
	p := &parser{toks: append(toks[:len(toks):len(toks)], eof, eof, eof), memo: map[memoKey]memoVal{}}
	n, end, ok := p.expr(0)
	if ok && toks[end].kind == kEOF {
		return n, nil
	}
	if ok {
		p.fail(end)
	}
	p.far = min(p.far, last)
	return nil, p.syntaxError()
}

func (p *parser) fail(i int) {
	if i > p.far {
		p.far = i
	}
}

func (p *parser) syntaxError() error {
	t := p.toks[p.far]
	if t.kind == kEOF {
		if p.far == 0 {
			return fmt.Errorf("filter: empty expression")
		}
		prev := p.toks[p.far-1]
		return fmt.Errorf("filter: unexpected end of expression after %q", prev.text)
	}
	return fmt.Errorf("filter: unexpected %q at column %d", t.text, t.col())
}

// is reports whether token i has kind k, noting a failure there if not.
func (p *parser) is(i int, k kind) bool {
	if p.toks[i].kind == k {
		return true
	}
	p.fail(i)
	return false
}

func (p *parser) memoized(rule uint8, pos, arg int, f func() (sx, int, bool)) (sx, int, bool) {
	key := memoKey{rule, pos, arg}
	if v, ok := p.memo[key]; ok {
		return v.n, v.end, v.ok
	}
	n, end, ok := f()
	p.memo[key] = memoVal{n, end, ok}
	return n, end, ok
}

// expr: term ((and|or) (term|id))*, left-associative, and and or of equal
// precedence (libpcap's %left OR AND).
func (p *parser) expr(i int) (sx, int, bool) {
	return p.memoized(ruleExpr, i, 0, func() (sx, int, bool) {
		l, i, ok := p.term(i)
		if !ok {
			return nil, i, false
		}
		for {
			op := p.toks[i].kind
			if op != kAnd && op != kOr {
				p.fail(i)
				return l, i, true
			}
			r, j, ok := p.term(i + 1)
			if !ok {
				r, j, ok = p.id(i + 1)
			}
			if !ok {
				return l, i, true
			}
			if op == kAnd {
				l = sAnd{l, r}
			} else {
				l = sOr{l, r}
			}
			i = j
		}
	})
}

func (p *parser) term(i int) (sx, int, bool) {
	return p.memoized(ruleTerm, i, 0, func() (sx, int, bool) {
		if p.toks[i].kind == kNot {
			x, j, ok := p.term(i + 1)
			if !ok {
				return nil, i, false
			}
			return sNot{x}, j, true
		}
		return p.rterm(i)
	})
}

func (p *parser) rterm(i int) (sx, int, bool) {
	t := p.toks[i]
	if t.kind == kUnsupported {
		// Reaching an unsupported keyword is reported by name (lex does
		// that already; this keeps the parser total on its own).
		p.fail(i)
		return nil, i, false
	}
	if q, j, ok := p.head(i); ok {
		id, k, ok := p.id(j)
		if ok {
			return sHeadID{q, id}, k, true
		}
	}
	if t.kind == kLParen {
		if x, j, ok := p.expr(i + 1); ok && p.is(j, kRParen) {
			return sParen{x}, j + 1, true
		}
	}
	if l, j, ok := p.arith(i, 0); ok {
		switch p.toks[j].kind {
		case kGT, kGE, kEQ, kLE, kLT, kNE:
			if r, k, ok := p.arith(j+1, 0); ok {
				return sRel{p.toks[j], l, r}, k, true
			}
		default:
			p.fail(j)
		}
	}
	if n, j, ok := p.other(i); ok {
		return n, j, true
	}
	if _, ok := pnames[t.kind]; ok {
		return sPname{t}, i + 1, true
	}
	p.fail(i)
	return nil, i, false
}

// head: [pname] then a direction, an address type, or both, or "proto".
func (p *parser) head(i int) (qual, int, bool) {
	var q qual
	if pq, ok := pnames[p.toks[i].kind]; ok {
		q.proto = pq
		t := p.toks[i]
		q.protoTok = &t
		i++
	}
	start := i
	switch p.toks[i].kind {
	case kSrc, kDst:
		q.dir = dSrc
		if p.toks[i].kind == kDst {
			q.dir = dDst
		}
		i++
		// "src or dst", "dst and src", ...
		if a, b := p.toks[i].kind, p.toks[i+1].kind; (a == kOr || a == kAnd) && (b == kSrc || b == kDst) && b != p.toks[i-1].kind {
			q.dir = dOr
			if a == kAnd {
				q.dir = dAnd
			}
			i += 2
		}
	case kProto:
		t := p.toks[i]
		q.addr, q.addrTok = aProto, &t
		return q, i + 1, true
	}
	switch p.toks[i].kind {
	case kHost, kNet, kPort, kPortrange:
		t := p.toks[i]
		q.addr = map[kind]qaddr{kHost: aHost, kNet: aNet, kPort: aPort, kPortrange: aPortrange}[t.kind]
		q.addrTok = &t
		i++
	}
	if i == start {
		p.fail(i)
		return q, i, false
	}
	return q, i, true
}

// other: less N, greater N, vlan [N], [pname] broadcast, [pname] multicast.
func (p *parser) other(i int) (sx, int, bool) {
	t := p.toks[i]
	switch t.kind {
	case kLess, kGreater:
		if p.is(i+1, kNum) {
			a := p.toks[i+1]
			return sOther{tok: t, arg: &a}, i + 2, true
		}
		return nil, i, false
	case kVLAN:
		if n, j, ok := p.pnum(i + 1); ok {
			a := n.(sNum).tok
			return sOther{tok: t, arg: &a}, j, true
		}
		return sOther{tok: t}, i + 1, true
	case kBroadcast, kMulticast:
		return sOther{tok: t}, i + 1, true
	}
	if _, ok := pnames[t.kind]; ok {
		if k := p.toks[i+1].kind; k == kBroadcast || k == kMulticast {
			return sOther{tok: p.toks[i+1], pqual: &t}, i + 2, true
		}
	}
	p.fail(i)
	return nil, i, false
}

// id: a bare address, number or name; "not id"; or a parenthesized list
// of ids joined by and/or.
func (p *parser) id(i int) (sx, int, bool) {
	return p.memoized(ruleID, i, 0, func() (sx, int, bool) {
		if n, j, ok := p.nid(i); ok {
			return n, j, true
		}
		if n, j, ok := p.pnum(i); ok {
			return n, j, true
		}
		if p.is(i, kLParen) {
			if n, j, ok := p.pid(i + 1); ok && p.is(j, kRParen) {
				return n, j + 1, true
			}
		}
		return nil, i, false
	})
}

func (p *parser) nid(i int) (sx, int, bool) {
	t := p.toks[i]
	switch t.kind {
	case kID:
		return sName{t}, i + 1, true
	case kHID:
		if p.toks[i+1].kind == kSlash && p.is(i+2, kNum) {
			b := p.toks[i+2]
			return sHID{tok: t, bits: &b}, i + 3, true
		}
		if p.toks[i+1].kind == kMask && p.is(i+2, kHID) {
			m := p.toks[i+2]
			return sHID{tok: t, mask: &m}, i + 3, true
		}
		return sHID{tok: t}, i + 1, true
	case kHID6:
		if p.toks[i+1].kind == kSlash && p.is(i+2, kNum) {
			b := p.toks[i+2]
			return sHID6{tok: t, bits: &b}, i + 3, true
		}
		return sHID6{tok: t}, i + 1, true
	case kEID:
		return sEID{t}, i + 1, true
	case kNot:
		if x, j, ok := p.id(i + 1); ok {
			return sNot{x}, j, true
		}
		return nil, i, false
	}
	p.fail(i)
	return nil, i, false
}

// pnum: NUM or a parenthesized pnum.
func (p *parser) pnum(i int) (sx, int, bool) {
	return p.memoized(rulePnum, i, 0, func() (sx, int, bool) {
		switch p.toks[i].kind {
		case kNum:
			return sNum{p.toks[i]}, i + 1, true
		case kLParen:
			if n, j, ok := p.pnum(i + 1); ok && p.is(j, kRParen) {
				return n, j + 1, true
			}
			return nil, i, false
		}
		p.fail(i)
		return nil, i, false
	})
}

// pid: (nid | pnum) ((and|or) id)*, where a lone pnum is not a pid (it is
// the pnum rule's "( pnum )").
func (p *parser) pid(i int) (sx, int, bool) {
	first, j, ok := p.nid(i)
	lone := ok
	if !ok {
		if first, j, ok = p.pnum(i); !ok {
			return nil, i, false
		}
	}
	l := first
	for {
		op := p.toks[j].kind
		if op != kAnd && op != kOr {
			p.fail(j)
			break
		}
		r, k, ok := p.id(j + 1)
		if !ok {
			break
		}
		if op == kAnd {
			l = sAnd{l, r}
		} else {
			l = sOr{l, r}
		}
		j, lone = k, true
	}
	return l, j, lone
}

// Arithmetic: precedence climbing over libpcap's levels, lowest first:
// |, ^, &, << >>, + -, * / %; unary minus binds tightest.
var binPrec = map[kind]int{
	kPipe: 1, kCaret: 2, kAmp: 3, kShl: 4, kShr: 4, kPlus: 5, kMinus: 5,
	kStar: 6, kSlash: 6, kPercent: 6,
}

func (p *parser) arith(i, minPrec int) (sx, int, bool) {
	return p.memoized(ruleArith, i, minPrec, func() (sx, int, bool) {
		l, i, ok := p.primary(i)
		if !ok {
			return nil, i, false
		}
		for {
			op := p.toks[i]
			prec, isOp := binPrec[op.kind]
			if !isOp || prec <= minPrec-1 || prec < minPrec {
				p.fail(i)
				return l, i, true
			}
			r, j, ok := p.arith(i+1, prec+1)
			if !ok {
				return l, i, true
			}
			l = sBin{op, l, r}
			i = j
		}
	})
}

func (p *parser) primary(i int) (sx, int, bool) {
	t := p.toks[i]
	switch t.kind {
	case kNum:
		return sNum{t}, i + 1, true
	case kLen:
		return sLen{t}, i + 1, true
	case kMinus:
		if x, j, ok := p.primary(i + 1); ok {
			return sNeg{t, x}, j, true
		}
		return nil, i, false
	case kLParen:
		if x, j, ok := p.arith(i+1, 0); ok && p.is(j, kRParen) {
			return x, j + 1, true
		}
		return nil, i, false
	}
	if _, ok := pnames[t.kind]; ok && p.is(i+1, kLBrack) {
		idx, j, ok := p.arith(i+2, 0)
		if !ok {
			return nil, i, false
		}
		var size *token
		if p.toks[j].kind == kColon {
			if !p.is(j+1, kNum) {
				return nil, i, false
			}
			s := p.toks[j+1]
			size = &s
			j += 2
		}
		if !p.is(j, kRBrack) {
			return nil, i, false
		}
		return sLoad{t, idx, size}, j + 1, true
	}
	p.fail(i)
	return nil, i, false
}
