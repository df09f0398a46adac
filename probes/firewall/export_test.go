package firewall

// What the kernel tests in package firewall_test need from inside: they
// take a *probes.Target, so they cannot be in this package (package probes
// imports it).

// FakeSaveNetnsEnv tells the fake iptables-legacy-save (legacy_fake_test.go)
// the inode of the namespace it must find itself in.
const FakeSaveNetnsEnv = fakeSaveNetnsEnv
