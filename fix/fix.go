// Package fix is a fix as data: a summary, typed steps that each know the
// command a person would type, how to check themselves against the
// kernel's state, how to make the change and what undoes it, and advice
// where no host-local change helps.
//
// It is pure: steps reach the kernel only through the Kernel interface,
// which fix/apply implements with netlink and /proc/sys writes. So the
// playbook builds fixes, the view shows them, and persistence renders them
// without any of them touching the kernel.
package fix

import "asym/evidence"

// Fix is what to change: the same fix renders in the view, the notes and
// JSON, and one small executor (fix/apply) applies it.
type Fix struct {
	Summary string `json:"summary"`
	// Steps is empty when the fix is not host-local: then Advice says what
	// to change and where.
	Steps  Steps  `json:"steps,omitempty"`
	Advice string `json:"advice,omitempty"`
	// Caveat says what it will not fix or what to check first.
	Caveat string `json:"caveat,omitempty"`
	// Alternatives are other fixes, explained, not recommended over Steps.
	Alternatives []Fix `json:"alternatives,omitempty"`
	// Prove lists commands to run elsewhere (the other firewall, the far
	// end) that confirm the diagnosis, with the flow filled in and quoted.
	Prove []string `json:"prove,omitempty"`
}

// Missing names the first fact a step lacks (e.g. a gateway asym could not
// find), "" when every step is complete and the fix can be applied.
func (f *Fix) Missing() string {
	if f == nil {
		return ""
	}
	for _, s := range f.Steps {
		if m := s.Missing(); m != "" {
			return m
		}
	}
	return ""
}

// Render turns a command's words into the line shown to a person.
type Render func(words []string) string

// Prefixed renders words after prefix (e.g. ip netns exec NAME), each word
// quoted for the local shell: a pasted fix must change the namespace that
// was diagnosed, never the host's own.
func Prefixed(prefix []string) Render {
	return func(w []string) string { return evidence.Command(append(append([]string{}, prefix...), w...)...) }
}

// Remote renders words to run on the far end (--peer): the peer's words in
// front, quoted for ssh's remote shell as well.
func Remote(prefix []string) Render {
	return func(w []string) string { return evidence.RemoteCommand(prefix, w...) }
}

// Commands renders every step for this host's own namespace.
func (f *Fix) Commands() []string { return f.CommandsVia(Prefixed(nil)) }

// CommandsIn renders every step to run inside a target, prefix being the
// words that enter it.
func (f *Fix) CommandsIn(prefix []string) []string { return f.CommandsVia(Prefixed(prefix)) }

// CommandsVia renders every step with render.
func (f *Fix) CommandsVia(render Render) []string {
	if f == nil {
		return nil
	}
	out := make([]string, len(f.Steps))
	for i, s := range f.Steps {
		out[i] = render(s.Words())
	}
	return out
}
