package drops

// Naming the code that dropped a packet: the tracepoint gives the address
// kfree_skb was called from, and /proc/kallsyms the function around it.

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// kallsyms is the file, a variable so that tests can point elsewhere.
var kallsyms = "/proc/kallsyms"

// symbols names addresses, each looked up once. The table is not kept:
// 120,000 symbols are some 5 MiB, and a window sees a handful of
// locations, so each new batch of unknown addresses costs one pass over
// the file (about 40 ms) instead.
type symbols struct {
	known map[uint64]symbol
}

type symbol struct {
	name string
	off  uint64
}

func newSymbols() *symbols { return &symbols{known: map[uint64]symbol{}} }

// name is the function holding addr and addr's offset in it; "" when the
// file cannot be read or shows no addresses (kptr_restrict hides them
// from all but root).
func (s *symbols) name(addr uint64) (string, uint64) {
	if sym, ok := s.known[addr]; ok {
		return sym.name, sym.off
	}
	s.resolve([]uint64{addr})
	sym := s.known[addr]
	return sym.name, sym.off
}

// resolve looks up addresses in one pass: for each, the text symbol with
// the highest address not above it.
func (s *symbols) resolve(addrs []uint64) {
	best := make([]symbol, len(addrs))
	bestAt := make([]uint64, len(addrs))
	f, err := os.Open(kallsyms)
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			at, name, ok := textSymbol(sc.Text())
			if !ok {
				continue
			}
			for i, a := range addrs {
				if at <= a && at >= bestAt[i] {
					best[i], bestAt[i] = symbol{name: name}, at
				}
			}
		}
		f.Close()
	}
	for i, a := range addrs {
		if best[i].name != "" {
			best[i].off = a - bestAt[i]
		}
		s.known[a] = best[i]
	}
}

// textSymbol parses a line "ffffffff82049e30 t ip_rcv_finish_core
// [module]" when it is a function (type t or T) at a real address.
func textSymbol(line string) (uint64, string, bool) {
	f := strings.Fields(line)
	if len(f) < 3 || (f[1] != "t" && f[1] != "T") {
		return 0, "", false
	}
	at, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil || at == 0 {
		return 0, "", false
	}
	return at, f[2], true
}
