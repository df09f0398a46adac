package persist

// Persistence for a network namespace that is not the host's own: the
// host's network manager and /etc/sysctl.d configure only the host's
// namespace, so what makes a namespace's network must carry the fix.

import (
	"errors"
	"fmt"

	"asym/evidence"
	"asym/fix"
)

// Managers of a namespace's network.
const (
	// NamespaceScript is whatever creates a named namespace (ip netns add
	// NAME) and sets up its interfaces: a script, a unit, a test harness.
	NamespaceScript Manager = "the script that creates the namespace"
	// ContainerRuntime is what makes a container's network: CNI plugins,
	// docker network, a pod spec.
	ContainerRuntime Manager = "the container runtime"
)

// Namespace is a network namespace other than the host's own, named as a
// person named it.
type Namespace struct {
	// Kind is "netns" (ip netns NAME), "path" (a namespace file), "pid" (a
	// process's namespace: a container's) or "own" (the one asym runs in,
	// which has no name: asym runs in a container).
	Kind  string
	Value string // the name, path or pid; empty for "own"
}

func (ns Namespace) String() string {
	if ns.Kind == "own" {
		return "the namespace asym runs in"
	}
	return ns.Kind + " " + ns.Value
}

// enter is a step's words run inside the namespace: ip -n NAME for an ip
// command in a named namespace (what its creation script would write),
// ip netns exec NAME or nsenter for anything else.
func (ns Namespace) enter(w []string) []string {
	switch ns.Kind {
	case "netns":
		if len(w) > 0 && w[0] == "ip" {
			return append([]string{"ip", "-n", ns.Value}, w[1:]...)
		}
		return append([]string{"ip", "netns", "exec", ns.Value}, w...)
	case "pid":
		return append([]string{"nsenter", "-t", ns.Value, "-n"}, w...)
	case "path":
		return append([]string{"nsenter", "--net=" + ns.Value}, w...)
	}
	return w
}

// RenderNamespace expresses the steps for what makes the namespace's
// network instead of the host's manager: a script of commands that enter
// the namespace, in the fix's order, with notes that say where they
// belong. For a named namespace or a namespace file that is whatever
// creates it; for a container (a pid, or asym's own namespace) the
// runtime owns the network, and the commands only last until the container
// restarts. It renders no file: nothing under the host's /etc configures
// a namespace.
func RenderNamespace(ns Namespace, steps fix.Steps) (Rendered, error) {
	r := Rendered{Manager: NamespaceScript}
	if ns.Kind == "pid" || ns.Kind == "own" {
		r.Manager = ContainerRuntime
	}
	var dels []string
	sysctls := false
	for i, s := range steps {
		if m := s.Missing(); m != "" {
			return Rendered{}, fmt.Errorf("step %d (%s) is incomplete: asym could not find out %s; fill it in before persisting it", i+1, evidence.Command(s.Words()...), m)
		}
		if fix.Stateless(s) {
			continue // a message to the neighbours: nothing to keep
		}
		line := evidence.Command(ns.enter(s.Words())...)
		r.Script = append(r.Script, line)
		switch s.(type) {
		case *fix.RuleDel, *fix.RouteDel:
			dels = append(dels, line)
		case *fix.SysctlSet:
			sysctls = true
		}
	}
	if len(r.Script) == 0 {
		return Rendered{}, errors.New("the fix changes nothing that lasts: there is nothing to keep")
	}
	r.Notes = append(r.Notes, namespaceNotes(ns)...)
	if sysctls {
		r.Notes = append(r.Notes, "The sysctls are the namespace's own: /etc/sysctl.d configures the host's namespace only. Per-interface ones need the interface in the namespace first.")
	}
	for _, d := range dels {
		r.Notes = append(r.Notes, "asym removed "+quoteNote(d)+" at runtime: if what makes the namespace adds it, drop it there rather than deleting it afterwards.")
	}
	return r, nil
}

// namespaceNotes say whose the namespace's network is, and how long the
// commands last.
func namespaceNotes(ns Namespace) []string {
	switch ns.Kind {
	case "netns":
		return []string{
			fmt.Sprintf("%s is not the host's network namespace: the host's network manager does not configure it, and it is gone (with the fix) when it is deleted or the host reboots.", ns),
			"Add the script to whatever creates it (the script or unit that runs ip netns add " + evidence.Command(ns.Value) + "), after its interfaces are moved in and addressed.",
		}
	case "path":
		return []string{
			fmt.Sprintf("%s is not the host's network namespace: whatever made and mounted it (ip netns, a container runtime) sets up its network, not the host's network manager.", ns),
			"Add the script to what makes it, after its interfaces are moved in and addressed; a namespace made again under that path does not have the fix.",
		}
	case "pid":
		return []string{
			fmt.Sprintf("%s runs in a container's network namespace: the container runtime owns its network (CNI plugins, docker network, the pod spec), not the host's network manager.", ns),
			"The fix, and these commands run by hand, are lost when the container restarts: its runtime makes a new namespace. Until the runtime's configuration carries it (namespaced sysctls in the pod's securityContext.sysctls or docker run --sysctl; routes and rules in the CNI configuration or a start-up step with NET_ADMIN), run them again after each restart, with the new pid.",
		}
	}
	return []string{
		"asym runs in a network namespace that is not the host's (in a container?): its network is made by the container runtime (CNI plugins, docker network, the pod spec), not by a network manager.",
		"These commands run where asym runs; they are lost when the container restarts, until the runtime's configuration carries them.",
	}
}

// ForNamespace says whether r is for a namespace other than the host's:
// a script for what makes it, no file to write.
func (r Rendered) ForNamespace() bool {
	return r.Manager == NamespaceScript || r.Manager == ContainerRuntime
}
