package ui

// The other end of the flow (--peer): its evidence arrives in one piece
// from `asym collect` run there; the steps show it next to this host's.

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"asym/evidence"
	"asym/playbook"
)

type peerState struct {
	cancel  context.CancelFunc // stops the run in progress (its process group)
	running bool
	watch   time.Duration // the live window of the run in progress
	runID   int
	res     *evidence.PeerResult
	pa      *playbook.PeerAnalysis
}

type peerDoneMsg struct {
	runID int
	res   evidence.PeerResult
}

// peerWatch is the peer's live window when the live view opens: long
// enough to reproduce the failure a few times.
const peerWatch = 10 * time.Second

// runPeer (re)collects the peer's evidence off the UI goroutine, with a live
// window of watch when not zero.
func (m *Model) runPeer(watch time.Duration) tea.Cmd {
	if !m.hasPeer() {
		return nil
	}
	m.peer.stop() // a superseded run must not keep an ssh session going
	ctx, cancel := context.WithCancel(context.Background())
	m.peer.runID++
	m.peer.running, m.peer.watch, m.peer.cancel = true, watch, cancel
	sess, f, id := m.opt.Session, m.flow, m.peer.runID
	return func() tea.Msg { return peerDoneMsg{runID: id, res: sess.Peer(ctx, f, watch)} }
}

// stop ends the peer run in progress, if any.
func (p *peerState) stop() {
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
}

func (m *Model) peerDone(msg peerDoneMsg) tea.Cmd {
	if msg.runID != m.peer.runID {
		return nil // superseded by a newer run
	}
	m.peer.running, m.peer.res = false, &msg.res
	m.peer.stop() // releases the context
	if m.prober != nil {
		m.analyze()
	}
	m.spinning = m.anyRunning()
	return nil
}

// joinPeer adds the peer's findings (its own, its failures, and those of
// both ends) to this host's.
func (m *Model) joinPeer(ev *evidence.Evidence) {
	m.peer.pa = nil
	if m.peer.res == nil {
		return
	}
	pa := playbook.AnalyzePeer(ev, *m.peer.res)
	m.peer.pa = &pa
	playbook.MarkHere(m.findings)
	// Grouped by end, each group sorted: across both ends first (what
	// neither end shows alone is the conclusion), then here, then the
	// peer's own and its failures.
	var both, peers []playbook.Finding
	for _, f := range pa.Findings {
		if f.Side == playbook.SideBoth {
			both = append(both, f)
		} else {
			peers = append(peers, f)
		}
	}
	peers = append(peers, pa.Peer.Findings...)
	playbook.Sort(both)
	playbook.Sort(peers)
	m.findings = append(append(both, m.findings...), peers...)
}

// peerHeader is the header's line about the peer.
func (m *Model) peerHeader() string {
	c := playbook.Clean
	switch {
	case !m.hasPeer():
		return ""
	case m.peer.running && m.peer.watch > 0:
		return "peer " + m.st.Run.Render(fmt.Sprintf("%s watching the flow there for %s: reproduce the failure", m.spin.View(), m.peer.watch)) + m.dim(" · $ "+c(m.opt.Session.PeerCommand()))
	case m.peer.running:
		return "peer " + m.st.Run.Render(m.spin.View()+" collecting") + m.dim(" · $ "+c(m.opt.Session.PeerCommand()))
	case m.peer.pa == nil:
		return "peer " + m.dim("collected when the First step runs · $ "+c(m.opt.Session.PeerCommand()))
	}
	p := m.peer.pa.Peer
	if p.Failure != nil {
		return "peer " + m.st.Bad.Render("✗ not diagnosed: "+c(p.Failure.Reason))
	}
	short, _, _ := strings.Cut(p.Host.Role.Describe(), " (")
	return "peer " + m.st.OK.Render("✓ ") + c(p.Host.Hostname) + " · " + c(p.Host.Target) + " · " + short + m.dim(" · $ "+c(p.Command))
}

// peerStepLines are the peer's probes of step i, rendered like this host's.
func (m *Model) peerStepLines(i, width int) []string {
	switch {
	case !m.hasPeer():
		return nil
	case m.peer.running:
		return []string{m.st.Run.Render(m.spin.View() + " the peer's evidence is being collected…")}
	case m.peer.pa == nil:
		return []string{m.dim("The peer's evidence is collected when the First step runs.")}
	}
	p := m.peer.pa.Peer
	if p.Failure != nil {
		return hang(m.st.Bad, "✗ ", "not diagnosed: "+playbook.Clean(p.Failure.Reason), width)
	}
	var out []string
	if i < len(p.Steps) {
		for _, r := range p.Steps[i].Probes {
			out = append(out, "")
			out = append(out, m.reportLines(r.Rep(), width)...)
		}
	}
	return out
}

// bothEnds lays this host's lines and the peer's side by side when there is
// room for two columns of 60, stacked otherwise (80 columns).
func (m *Model) bothEnds(here, there []string, width int) []string {
	hereTitle := m.st.Title.Render("── here: " + playbook.Clean(m.info.Hostname) + " · " + playbook.Clean(m.info.Target))
	peerTitle := m.st.Title.Render("── peer")
	if m.peer.pa != nil && m.peer.pa.Peer.Failure == nil {
		p := m.peer.pa.Peer
		peerTitle = m.st.Title.Render("── peer: " + playbook.Clean(p.Host.Hostname) + " · " + playbook.Clean(p.Host.Target))
	}
	const colMin = 60
	if width < 2*colMin+3 {
		out := append([]string{hereTitle}, here...)
		out = append(out, "", peerTitle)
		return append(out, there...)
	}
	return columns(append([]string{hereTitle}, here...), append([]string{peerTitle}, there...), (width-3)/2, m.dim(" │ "))
}

// columns joins two lists of lines side by side; the lines must have been
// wrapped to colWidth.
func columns(left, right []string, colWidth int, sep string) []string {
	n := max(len(left), len(right))
	out := make([]string, n)
	for i := range out {
		l, r := "", ""
		if i < len(left) {
			l = ansi.Truncate(left[i], colWidth, "…")
		}
		if i < len(right) {
			r = ansi.Truncate(right[i], colWidth, "…")
		}
		out[i] = l + strings.Repeat(" ", max(0, colWidth-ansi.StringWidth(l))) + sep + r
	}
	return out
}

// peerFixRefusal says why a finding's fix is not applied from here.
func peerFixRefusal(f playbook.Finding) string {
	switch f.Side {
	case playbook.SidePeer:
		return fmt.Sprintf("%s is on the peer: its fix runs there (asym applies fixes only to the host it runs on)", f.ID)
	case playbook.SideBoth:
		return string(f.ID) + " spans both ends: its advice says where to change what"
	}
	return ""
}

// hasPeer says whether the far end is diagnosed too (--peer).
func (m *Model) hasPeer() bool { return m.opt.Session.PeerCommand() != "" }
