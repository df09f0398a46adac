package ui

import (
	"fmt"
	"net/netip"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/fix"
	"asym/playbook"
)

// gatewayAsk asks the person for the gateway of an interface asym could
// not find (no route, no configuration, no single neighbour, no frame):
// asym never applies a guess, but it offers what it knows.
type gatewayAsk struct {
	dev     string
	why     string // what asym looked at
	input   textinput.Model
	choices []evidence.Neighbour
	choice  int
	err     string
}

// openGatewayAsk starts asking for the first gateway the fix lacks.
func (m *Model) openGatewayAsk(fx *fix.Fix) {
	devs := fx.UnknownGateways()
	if len(devs) == 0 {
		return
	}
	ev := m.prober.Evidence()
	a := &gatewayAsk{dev: devs[0], why: fx.Missing(), choices: playbook.GatewayChoices(&ev, devs[0]), choice: -1}
	a.input = textinput.New()
	a.input.Placeholder = "address of the router on " + devs[0]
	a.input.CharLimit = 45
	a.input.SetWidth(40)
	st := a.input.Styles()
	if m.opt.Plain {
		st = textinput.Styles{}
	}
	st.Cursor.Blink = false
	a.input.SetStyles(st)
	if len(a.choices) > 0 {
		a.choice = 0
		a.input.SetValue(a.choices[0].Addr.String())
	}
	a.input.Focus()
	m.fix.ask = a
}

// askKey owns every key while the question is open: what is typed is an
// address, not a command.
func (m *Model) askKey(k tea.KeyPressMsg) tea.Cmd {
	a := m.fix.ask
	switch k.String() {
	case "esc":
		m.fix.ask = nil
		m.setFlash("nothing named, nothing applied", false)
		return nil
	case "up", "down":
		if len(a.choices) > 0 {
			step := map[string]int{"up": -1, "down": 1}[k.String()]
			a.choice = (a.choice + step + len(a.choices)) % len(a.choices)
			a.input.SetValue(a.choices[a.choice].Addr.String())
			a.input.CursorEnd()
		}
		return nil
	case "enter":
		gw, err := m.checkGateway(a.dev, strings.TrimSpace(a.input.Value()))
		if err != "" {
			a.err = err
			return nil
		}
		if m.fix.named == nil {
			m.fix.named = map[string]netip.Addr{}
		}
		m.fix.named[a.dev] = gw
		m.fix.ask = nil
		m.analyze()
		m.setFlash("gateway of "+a.dev+": "+gw.String()+" (named by you): read the fix again, then enter to apply", false)
		return nil
	}
	var cmd tea.Cmd
	a.input, cmd = a.input.Update(k)
	a.err = ""
	return cmd
}

// checkGateway says in a sentence why an address cannot be the gateway of
// dev: it must be a unicast address of the interface's family, on its
// subnet (or IPv6 link-local), and not the host's own.
func (m *Model) checkGateway(dev, s string) (netip.Addr, string) {
	gw, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address: type the router's address, e.g. 192.0.2.1", playbook.Clean(s))
	}
	gw = gw.Unmap()
	if !gw.IsGlobalUnicast() && !gw.IsPrivate() && !gw.IsLinkLocalUnicast() {
		return netip.Addr{}, gw.String() + " cannot be a gateway: give a unicast address"
	}
	ev := m.prober.Evidence()
	if ev.Host == nil {
		return gw, ""
	}
	ifc := ev.Host.Iface(dev)
	if ifc == nil {
		return gw, ""
	}
	var subnets []string
	for _, p := range ifc.Addrs {
		if p.Addr() == gw {
			return netip.Addr{}, gw.String() + " is this host's own address on " + dev + ": give the router's"
		}
		if p.Addr().Is4() == gw.Is4() {
			if p.Masked().Contains(gw) || gw.IsLinkLocalUnicast() {
				return gw, ""
			}
			subnets = append(subnets, p.Masked().String())
		}
	}
	if len(subnets) == 0 {
		return netip.Addr{}, dev + " has no " + map[bool]string{true: "IPv4", false: "IPv6"}[gw.Is4()] + " address: the gateway must be of its family"
	}
	return netip.Addr{}, fmt.Sprintf("%s is not on %s's subnet (%s): the kernel only accepts a gateway it can reach directly", gw, dev, strings.Join(subnets, ", "))
}

// askLines renders the question in the fix view.
func (m *Model) askLines(width int) []string {
	a := m.fix.ask
	out := []string{m.st.Highlight.Render("Gateway of " + a.dev + "?")}
	out = append(out, hang(m.st.Dim, "", "asym could not find "+a.why+". It applies only what you confirm.", width)...)
	out = append(out, a.input.View())
	if len(a.choices) > 0 {
		out = append(out, m.dim("routers "+a.dev+" knows (↑↓ to choose):"))
		for i, n := range a.choices {
			line := "  " + n.Text
			if i == a.choice {
				line = m.st.Bold.Render("▸ " + n.Text)
			}
			out = append(out, playbook.Clean(line))
		}
	}
	if a.err != "" {
		out = append(out, hang(m.st.Bad, "", a.err, width)...)
	}
	return append(out, m.dim("enter: use it · esc: cancel"))
}
