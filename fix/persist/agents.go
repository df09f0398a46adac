package persist

// Cloud agents: the ones that rewrite or remove manual policy routing,
// found by the files they install, each with what to do about it.

import (
	"regexp"
	"strings"
)

// flowDisabled is `network: {config: disabled}` written in flow style,
// which scanYAML sees only as the value of network.
var flowDisabled = regexp.MustCompile(`(?m)^network:\s*\{\s*config:\s*["']?disabled["']?\s*\}`)

// agents finds the cloud agents that rewrite or remove policy routing,
// and whether cloud-init's network configuration is switched on.
func (t *tree) agents() {
	d := t.d
	first := func(paths ...string) string {
		for _, p := range paths {
			if t.exists(p) {
				return p
			}
		}
		return ""
	}
	if ev := first(
		"/usr/lib/systemd/system/refresh-policy-routes@.service",
		"/lib/systemd/system/refresh-policy-routes@.service",
		"/usr/lib/systemd/system/policy-routes@.service",
		"/lib/systemd/system/policy-routes@.service",
		"/usr/share/amazon-ec2-net-utils",
		"/usr/lib/systemd/network/80-ec2.network",
		"/lib/systemd/network/80-ec2.network",
		"/usr/bin/setup-policy-routes",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "amazon-ec2-net-utils", Evidence: ev, Warning: "amazon-ec2-net-utils writes its own policy routing for every secondary ENI (rules \"from <each address> lookup T\" with table and priority T = 10000 plus the device number) as systemd-networkd drop-ins under /run/systemd/network/70-IFACE.network.d (07- on Debian), and its refresh-policy-routes@ timer rewrites them from instance metadata: a manual rule for the same source address with a lower priority number is looked up first, and a manual table numbered 10000 or more may be the one it fills. After the next refresh, check ip rule and ip route show table N; keep asym's table below 10000, or stop the agent for that interface (systemctl disable --now refresh-policy-routes@IFACE.timer policy-routes@IFACE.service)."})
	} else if ev := first("/etc/sysconfig/network-scripts/ec2net-functions"); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "ec2-net-utils", Evidence: ev, Warning: "ec2-net-utils 1.x (Amazon Linux 2) rewrites route-/rule- style policy routing for secondary ENIs when they come up (ec2ifup): keep asym's table number away from its 10000+ tables and check ip rule after the interface is next brought up."})
	}

	if ev := first("/etc/cloud/cloud.cfg", "/usr/bin/cloud-init"); ev != "" {
		disabled := ""
		if t.exists("/etc/cloud/cloud-init.disabled") {
			disabled = "/etc/cloud/cloud-init.disabled"
		}
		for _, f := range append([]string{"/etc/cloud/cloud.cfg"}, prefix("/etc/cloud/cloud.cfg.d/", t.files("/etc/cloud/cloud.cfg.d"))...) {
			if !strings.HasSuffix(f, ".cfg") {
				continue
			}
			text, ok := t.read(f)
			if !ok {
				continue
			}
			// Later files override earlier ones (cloud-init merges
			// cloud.cfg.d/*.cfg in lexical order after cloud.cfg).
			if flowDisabled.MatchString(text) {
				disabled = f
			}
			for _, e := range scanYAML(text) {
				if len(e.path) == 2 && e.path[0] == "network" && e.path[1] == "config" {
					if e.value == "disabled" {
						disabled = f
					} else if disabled == f {
						disabled = ""
					}
				}
			}
		}
		a := Agent{Name: "cloud-init", Evidence: ev}
		if disabled != "" {
			a.Evidence += "; network configuration disabled by " + disabled
			a.Warning = "cloud-init is installed but its network configuration is disabled (" + disabled + "): it will not rewrite the network files it once wrote, but re-enabling it (or a new image) brings its own files back."
		} else {
			d.CloudInitNetwork = true
			a.Warning = "cloud-init renders the network configuration from the cloud's metadata (/etc/netplan/50-cloud-init.yaml, /etc/network/interfaces.d/50-cloud-init, ifcfg files marked \"Created by cloud-init\") and rewrites those files on boot on some clouds (every boot on EC2 and Azure); since 24.1 it also adds its own routing-policy for extra NICs on EC2. asym never writes into its files; to stop it, write network: {config: disabled} to /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg."
		}
		d.Agents = append(d.Agents, a)
	}

	if ev := first(
		"/usr/bin/google_guest_agent",
		"/usr/lib/systemd/system/google-guest-agent.service",
		"/lib/systemd/system/google-guest-agent.service",
		"/etc/default/instance_configs.cfg",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "google-guest-agent", Evidence: ev, Warning: "google-guest-agent configures secondary NICs through the host's network manager and, when it restarts or a DHCP lease renews, has removed routes from user-defined tables (GoogleCloudPlatform/guest-agent#76); the manager restores persisted routes only when it reconfigures the link. After systemctl restart google-guest-agent, check ip route show table N and reapply (nmcli device reapply DEV, or networkctl reconfigure DEV)."})
	}

	if ev := first(
		"/etc/systemd/system/NetworkManager.service.wants/nm-cloud-setup.service",
		"/etc/systemd/system/timers.target.wants/nm-cloud-setup.timer",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "nm-cloud-setup", Evidence: ev, Warning: "nm-cloud-setup is enabled: it adds NetworkManager routing tables and rules of its own for the addresses it reads from the cloud's metadata, which may sit before or after asym's rule; check ip rule after its next run (its timer runs it periodically)."})
	}
}

func prefix(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}
