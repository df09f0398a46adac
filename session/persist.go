package session

import (
	"strings"

	"asym/fix"
	"asym/fix/persist"
)

// Persistence expresses fix steps for the network manager that configures
// the interface they use, as detected under the persist root.
func (s *Session) Persistence(steps fix.Steps) (persist.Rendered, persist.Detection, error) {
	det := persist.Detect(s.cfg.PersistRoot)
	r, err := persist.Render(det.ManagerFor(deviceOf(steps)), steps, det)
	return r, det, err
}

// Persist is the view's "to keep it across reboots": a title and the
// rendered lines, or a sentence saying why asym cannot render it here.
func (s *Session) Persist(fx *fix.Fix) (string, []string) {
	title := "the network manager that configures the interface"
	r, _, err := s.Persistence(fx.Steps)
	if err != nil {
		return title, []string{"asym cannot render it for this host: " + err.Error()}
	}
	return title, strings.Split(strings.TrimRight(r.Text(), "\n"), "\n")
}

// deviceOf is the interface whose configuration carries the fix: the first
// route or rule that names one decides; a sysctl's interface stands in
// until one does.
func deviceOf(steps fix.Steps) string {
	dev := ""
	for _, st := range steps {
		named := ""
		switch st := st.(type) {
		case *fix.RouteAdd:
			named = st.Dev
		case *fix.RuleAdd:
			named = st.Dev
		case *fix.SysctlSet:
			if dev == "" {
				dev = st.Iface()
			}
		}
		if named != "" {
			return named
		}
	}
	return dev
}
