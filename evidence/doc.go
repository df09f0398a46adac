// Package evidence is the vocabulary every layer of asym shares: what the
// probes saw of one flow on one host (the views), how each probe ended (the
// report and its status), the packets, events and counters of a live
// window, the wire format a peer sends back, and the text helpers that make
// kernel and user text safe to show and to paste.
//
// It is a leaf: it imports no kernel library and runs nothing, so the pure
// playbook, the view and recorded evidence in tests can use it without a
// kernel (TestLayout in this package holds that line, and the other
// boundaries of the layout).
package evidence
