package firewall

// nftables' register file, as the path walk evaluates a rule in it: what a
// load put where, and whether asym knows it.

// regWords is the size of struct nft_regs in 32-bit words: the verdict
// (four words), then sixteen data words.
const regWords = 20

// regs holds the registers of one rule's evaluation. A word asym cannot
// know (a fib result, a random number) keeps where it came from, which a
// compare of it gives as the reason a rule may match.
type regs struct {
	data   [regWords * 4]byte
	known  [regWords]bool
	origin [regWords]string
	last   uint32 // the register written last
}

// regWord is where a register starts, in words (nft_parse_register in
// net/netfilter/nf_tables_api.c): NFT_REG_1..4 are 16 bytes each from word
// 4, NFT_REG32_00..15 one word each from word 4 too.
func regWord(reg uint32) (int, bool) {
	switch {
	case reg >= 1 && reg <= 4:
		return int(reg) * 4, true
	case reg >= 8 && reg <= 23:
		return int(reg) - 8 + 4, true
	}
	return 0, false
}

// store writes v into reg. The kernel zeroes the last word of a load that
// does not fill it (nft_payload_eval), so a short load compares as its
// bytes followed by zeros.
func (r *regs) store(reg uint32, v []byte) {
	w, ok := regWord(reg)
	if !ok {
		return
	}
	n := min((len(v)+3)/4, regWords-w)
	for i := range n {
		r.known[w+i], r.origin[w+i] = true, ""
		clear(r.data[(w+i)*4 : (w+i+1)*4])
	}
	copy(r.data[w*4:regWords*4], v)
	r.last = reg
}

// unknown marks n bytes from reg as unknown, loaded by origin.
func (r *regs) unknown(reg uint32, n int, origin string) {
	w, ok := regWord(reg)
	if !ok {
		return
	}
	for i := range min(max((n+3)/4, 1), regWords-w) {
		r.known[w+i], r.origin[w+i] = false, origin
	}
	r.last = reg
}

// forget makes every register unknown: an expression asym cannot read may
// have written any of them.
func (r *regs) forget(origin string) {
	for i := 4; i < regWords; i++ {
		r.known[i], r.origin[i] = false, origin
	}
}

// load reads n bytes from reg; ok is false when any word of them is
// unknown, and why then names what loaded it.
func (r *regs) load(reg uint32, n int) (v []byte, ok bool, why string) {
	w, valid := regWord(reg)
	if !valid || w*4+n > len(r.data) {
		return nil, false, "a register asym cannot read"
	}
	for i := range (n + 3) / 4 {
		if !r.known[w+i] {
			why = r.origin[w+i]
			if why == "" {
				why = "a value asym cannot read"
			}
			return nil, false, why
		}
	}
	return r.data[w*4 : w*4+n], true, ""
}
