package session

import (
	"path/filepath"
	"strings"

	"asym/fix"
	"asym/fix/persist"
	"asym/probes"
)

// Persistence expresses fix steps for what configures the target's
// network. For the host's own namespace that is the network manager that
// configures the interface they use, as detected under the persist root.
// For another namespace (a named one, a container's) it is whatever makes
// that namespace, never the host's manager, whose files do not configure
// it (persist.RenderNamespace) — unless a persist root was given
// explicitly: then the manager found there (a container's root file
// system, say).
func (s *Session) Persistence(steps fix.Steps) (persist.Rendered, persist.Detection, error) {
	if ns, ok := namespaceOf(s.t); ok && s.cfg.PersistRoot == "" {
		r, err := persist.RenderNamespace(ns, steps)
		return r, persist.Detection{}, err
	}
	det := persist.Detect(s.persistRoot())
	r, err := persist.Render(det.ManagerFor(deviceOf(steps)), steps, det)
	if ns, ok := namespaceOf(s.t); ok && err == nil {
		r.Notes = append(r.Notes, "This is for the network manager found under "+s.persistRoot()+", as asked: "+ns.String()+
			" is not the host's network namespace, and these files configure it only if what runs in it reads them.")
	}
	return r, det, err
}

// persistRoot is where the network manager's files are read: the root
// given, else the host's.
func (s *Session) persistRoot() string {
	if s.cfg.PersistRoot == "" {
		return "/"
	}
	return s.cfg.PersistRoot
}

// Persist is the view's "to keep it across reboots": a title and the
// rendered lines, or a sentence saying why asym cannot render it here.
func (s *Session) Persist(fx *fix.Fix) (string, []string) {
	title := "the network manager that configures the interface"
	r, _, err := s.Persistence(fx.Steps)
	if err != nil {
		return title, []string{"asym cannot render it for this host: " + err.Error()}
	}
	if r.ForNamespace() {
		title = s.t.String() + " is not the host's network: for " + string(r.Manager)
	}
	return title, strings.Split(strings.TrimRight(r.Text(), "\n"), "\n")
}

// namespaceOf says which namespace the target is when it is not the
// host's own network namespace.
func namespaceOf(t *probes.Target) (persist.Namespace, bool) {
	if t.HostNetwork() {
		return persist.Namespace{}, false
	}
	switch {
	case t.Kind == "host" && t.OwnName() != "":
		return persist.Namespace{Kind: "netns", Value: t.OwnName()}, true
	case t.Kind == "host":
		return persist.Namespace{Kind: "own"}, true
	case t.Kind == "path":
		// ip netns keeps its namespaces here: a path to one is its name.
		if dir, name := filepath.Split(filepath.Clean(t.Value)); (dir == "/run/netns/" || dir == "/var/run/netns/") && name != "" {
			return persist.Namespace{Kind: "netns", Value: name}, true
		}
	}
	return persist.Namespace{Kind: t.Kind, Value: t.Value}, true
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
