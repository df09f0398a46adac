package firewall

// The path walk: one packet of the flow through the base chains of the
// hooks it crosses, in priority order, rule by rule, the way nft_do_chain
// (and ipt_do_table for iptables-legacy) would run them. A rule asym cannot
// evaluate statically "may match": the walk then follows both what happens
// if it does (its jump, its verdict) and if it does not, and every later
// rule is reached only "maybe". Chains are fetched when the packet first
// reaches them, so a chain no packet of the flow can reach is never read.

import (
	"fmt"
	"strings"

	"asym/evidence"
)

// Bounds of one probe's walks.
const (
	// maxDepth is the kernel's own jump stack (NFT_JUMP_STACK_SIZE).
	maxDepth = 16
	// maxFetched bounds the chains fetched: a ruleset whose every chain
	// may be reached (no flow given, or nothing evaluable) is not read
	// whole.
	maxFetched = 512
	// maxEvaluated bounds the rules evaluated over all walks.
	maxEvaluated = 400_000
	// maxHits bounds the hits one path keeps; more are counted.
	maxHits = 256
)

// pathRule is one rule of a chain as the walk meets it.
type pathRule interface {
	// eval runs the rule on p, changing p as its statements do.
	eval(p *packet) ruleEval
	// hit renders the rule for the path.
	hit() evidence.PathHit
	// key names the rule among every chain's (for the probe's Rules, NAT
	// and Marks).
	key() ruleKey
}

// ruleKey names a rule: its chain and handle (position for legacy).
type ruleKey struct {
	source, family, table, chain string
	handle                       uint64
}

// pathChain is a chain as the walk meets it.
type pathChain struct {
	source, family, table, name string
	hook                        string // base chains
	priority                    int
	base                        bool
	policy                      string // a base chain's: "accept" or "drop"
	nat                         bool   // type nat: only a connection's first packet runs it
	header                      string // the line that introduces its rules
	// Legacy chains count the packets their policy took.
	policyCounter              bool
	policyPackets, policyBytes uint64
	// fetch reads the rules; jump finds another chain of the same table.
	fetch func() ([]pathRule, error)
	jump  func(name string) *pathChain
	rules []pathRule
	err   error
	read  bool
}

// budget is shared by every walk of one probe.
type budget struct {
	fetched, evaluated int
	fetchedChains      []*pathChain // in the order they were fetched
	hit                map[ruleKey]bool
	truncated          string
}

// load fetches a chain's rules on first use, within the budget.
func (b *budget) load(c *pathChain) ([]pathRule, error) {
	if c.read {
		return c.rules, c.err
	}
	if b.fetched >= maxFetched {
		b.truncate(fmt.Sprintf("more than %d chains can be reached", maxFetched))
		return nil, errBudget
	}
	b.fetched++
	c.read = true
	c.rules, c.err = c.fetch()
	b.fetchedChains = append(b.fetchedChains, c)
	return c.rules, c.err
}

func (b *budget) truncate(why string) {
	if b.truncated == "" {
		b.truncated = why
	}
}

// errBudget stops a walk that reached a bound.
var errBudget = fmt.Errorf("the walk reached its bound")

// walk is one packet's way.
type walk struct {
	b     *budget
	p     *packet
	path  evidence.FirewallPath
	alive tri // the packet has not been dropped (yet)
	drop  int // index in path.Hits of the first certain drop, -1 when none
	may   int // of the first drop that may happen, -1 when none
	notes []string
	// early: the packet is in chains before conntrack's hook, which see
	// no connection; saved is the connection it gets there.
	early bool
	saved ctView
	// anyHook: where the flow crosses this host is not known, and each
	// hook is walked as if the packet came to it (a drop in input does
	// not keep it from forward).
	anyHook bool
}

func newWalk(b *budget, p *packet, dir evidence.Direction, c evidence.PathCase) *walk {
	return &walk{b: b, p: p, alive: yes, drop: -1, may: -1,
		path: evidence.FirewallPath{Direction: dir, Case: c, By: -1}}
}

// chain walks one chain's rules from reach; it returns how sure the
// packet falls through its end (or returns from it).
func (w *walk) chain(c *pathChain, depth int, reach tri) tri {
	rules, err := w.b.load(c)
	if err != nil {
		w.note(c, err)
		return reach.and(maybe)
	}
	fall := no
	for _, r := range rules {
		if reach == no {
			break
		}
		if w.b.evaluated >= maxEvaluated {
			w.b.truncate(fmt.Sprintf("more than %d rules on the way", maxEvaluated))
			return reach.and(maybe)
		}
		w.b.evaluated++
		ev := r.eval(w.p)
		m := reach.and(ev.match)
		if m == no {
			w.path.Others++
			continue
		}
		idx := w.record(c, r, ev, m, depth)
		var ended bool
		reach, fall, ended = w.verdicts(c, ev, idx, depth, reach, fall)
		if ended {
			return fall
		}
	}
	return fall.or(reach)
}

// verdicts acts on what a matching rule decides. It returns the reach of
// the next rule, the chain's fall-through so far, and whether the chain
// certainly ended.
func (w *walk) verdicts(c *pathChain, ev ruleEval, idx, depth int, reach, fall tri) (tri, tri, bool) {
	// v.reach is how sure the rule itself gives the verdict; m how sure
	// the packet gets it. A verdict the rule certainly gives ends the
	// chain for every packet that gets this far, however sure that is.
	for _, v := range ev.verdicts {
		m := reach.and(v.reach)
		switch v.name {
		case "jump":
			sub := w.follow(c, v, depth, m)
			if v.reach == yes {
				reach = sub
			} else {
				reach = reach.and(maybe).or(sub)
			}
		case "goto":
			// The packet does not come back: the chain ends where the
			// chain it went to ends.
			fall = fall.or(w.follow(c, v, depth, m))
			if v.reach == yes {
				return no, fall, true
			}
			reach = reach.and(maybe)
		case "return":
			fall = fall.or(m)
			if v.reach == yes {
				return no, fall, true
			}
			reach = reach.and(maybe)
		default:
			w.decide(v.name, idx, m)
			if v.reach == yes {
				return no, fall, true
			}
			reach = reach.and(maybe)
		}
	}
	return reach, fall, false
}

// follow walks the chain a jump or goto leads to.
func (w *walk) follow(c *pathChain, v verdictOpt, depth int, m tri) tri {
	if depth+1 >= maxDepth {
		w.b.truncate(fmt.Sprintf("jumps nested deeper than %d", maxDepth))
		return maybe
	}
	to := c.jump(v.chain)
	if to == nil {
		w.notes = append(w.notes, fmt.Sprintf("chain %s %s %s jumps to %s, which asym could not find", c.family, c.table, c.name, v.chain))
		return maybe
	}
	return w.chain(to, depth+1, m)
}

// decide records a verdict that ends the packet's way through the chain:
// drop and reject end its way altogether, as may a queue (user space
// decides) or a verdict asym cannot tell.
func (w *walk) decide(verdict string, idx int, m tri) {
	switch verdict {
	case "accept":
		return
	case "drop", "reject":
		if m == yes && w.drop < 0 {
			w.drop = idx
		}
		if w.may < 0 {
			w.may = idx
		}
		w.alive = w.alive.and(m.not())
	default: // queue, stolen, a verdict map asym cannot read
		if w.may < 0 {
			w.may = idx
		}
		w.alive = w.alive.and(maybe)
	}
}

// record adds a matching rule to the path; it returns its index, -1 when
// the path holds too many already.
func (w *walk) record(c *pathChain, r pathRule, ev ruleEval, m tri, depth int) int {
	w.b.hit[r.key()] = true
	if len(w.path.Hits) >= maxHits {
		w.path.Others++
		return -1
	}
	h := r.hit()
	h.Hook, h.Priority, h.Depth, h.Certain = w.p.hook, c.priority, depth, m == yes
	if h.Verdict == "" && len(ev.verdicts) == 1 && ev.verdicts[0].name != "?" {
		// A verdict map's: the one the packet's key gets.
		h.Verdict = strings.TrimSpace(ev.verdicts[0].name + " " + ev.verdicts[0].chain)
	}
	// A rule is "may match" for a condition of its own asym cannot
	// evaluate; one reached only if an earlier may-match does not decide
	// shows in the verdict's certainty instead.
	if ev.match == maybe {
		h.Maybe, h.Why = true, ev.why
	}
	w.path.Hits = append(w.path.Hits, h)
	return len(w.path.Hits) - 1
}

// policy ends a base chain the packet reaches the end of. A drop policy
// always shows; an accept policy shows only where the chain had hits.
func (w *walk) policy(c *pathChain, reach tri, hitsBefore int) {
	if reach == no || c.policy == "" || (c.policy == "accept" && len(w.path.Hits) == hitsBefore) {
		return
	}
	h := evidence.PathHit{Source: c.source, Family: c.family, Table: c.table, Chain: c.name, Hook: w.p.hook,
		Priority: c.priority, Policy: true, Verdict: c.policy, Certain: reach == yes,
		HasCounter: c.policyCounter, Packets: c.policyPackets, Bytes: c.policyBytes}
	idx := -1
	if len(w.path.Hits) < maxHits {
		w.path.Hits = append(w.path.Hits, h)
		idx = len(w.path.Hits) - 1
	}
	w.decide(c.policy, idx, reach)
}

func (w *walk) note(c *pathChain, err error) {
	if err == errBudget {
		return
	}
	w.notes = append(w.notes, fmt.Sprintf("could not read chain %s %s %s: %v", c.family, c.table, c.name, err))
}

// finish fills in the path's verdict.
func (w *walk) finish() evidence.FirewallPath {
	p := w.path
	switch {
	case w.drop >= 0:
		p.By, p.Certain = w.drop, true
		p.Verdict = p.Hits[w.drop].Verdict
	case w.may >= 0:
		p.By, p.Certain = w.may, false
		p.Verdict = p.Hits[w.may].Verdict
		if p.Verdict == "?" {
			p.Verdict = "drop"
		}
	default:
		p.Verdict, p.Certain = "accept", w.alive == yes
	}
	p.Truncated = w.b.truncated
	return p
}
