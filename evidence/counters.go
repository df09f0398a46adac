package evidence

// Counters are the kernel's drop and error counters of the target
// namespace, keyed "Prefix:Name" ("TcpExt:IPReversePathFilter",
// "Ip6:InDiscards", "nf_conntrack:invalid"). They only mean something as a
// difference between two samples: see Delta.
type Counters struct {
	Report
	// Values holds every counter the kernel offers, not only the
	// interesting ones; a file or key this kernel lacks is simply absent.
	Values map[string]uint64 `json:"values"`
}

// Counter keys analyzers read.
const (
	CounterRPFilter   = "TcpExt:IPReversePathFilter"
	CounterSynRetrans = "TcpExt:TCPSynRetrans"
	CounterRetrans    = "Tcp:RetransSegs"
	CounterCtInvalid  = "nf_conntrack:invalid"
	CounterMartianSrc = "rt_cache:in_martian_src"
	// CounterRulePrefix starts the key of one firewall rule's packet
	// counter in a live Sample: "rule:<family> <table> <chain> #<handle>".
	CounterRulePrefix = "rule:"
)

// Delta returns c-prev for every key present in both, for live views that
// sample twice. A counter that went backwards (namespace recreated, 32-bit
// per-CPU wrap) comes out negative rather than huge.
func (c *Counters) Delta(prev *Counters) map[string]int64 {
	d := map[string]int64{}
	if c == nil || prev == nil {
		return d
	}
	for k, b := range c.Values {
		if a, ok := prev.Values[k]; ok {
			d[k] = int64(b - a)
		}
	}
	return d
}

// Value returns one counter and whether the kernel offered it.
func (c *Counters) Value(key string) (uint64, bool) {
	if c == nil || c.Values == nil {
		return 0, false
	}
	v, ok := c.Values[key]
	return v, ok
}
