package firewall

// Statements that do not decide: counters, named counters, log.

import (
	"fmt"
	"strconv"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// decodeCounter reads an anonymous counter; it counts the match when it
// comes after it (scanner.counts).
func decodeCounter(s *scanner, c *expr.Counter) {
	s.text.push(fmt.Sprintf("counter packets %d bytes %d", c.Packets, c.Bytes))
	if s.sc.anyCounter == nil && s.sc.anyCounterName == "" {
		s.sc.anyCounter = c
	}
	if s.counts() {
		s.sc.counter = c
	}
}

// decodeObjref reads `counter name "x"`; its numbers are in the table's
// named objects (tableReader.count).
func decodeObjref(s *scanner, o *expr.Objref) {
	if o.Type != unix.NFT_OBJECT_COUNTER {
		s.text.push("…")
		return
	}
	s.text.push("counter name " + strconv.Quote(o.Name))
	if s.sc.anyCounter == nil && s.sc.anyCounterName == "" {
		s.sc.anyCounterName = o.Name
	}
	if s.counts() {
		s.sc.counterName = o.Name
	}
}

// decodeLog reads log, whatever its prefix and level.
func decodeLog(s *scanner, _ *expr.Log) { s.text.push("log") }
