package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/lab"
	"asym/playbook"
	"asym/probes/probetest"
)

// traceReport is what the tests read of asym trace --json.
type traceReport struct {
	evidence.Trace
	Findings []playbook.Finding `json:"findings"`
}

// Addresses of the firewall-ecmp lab, by the link they face.
var (
	fwR1Client = netip.MustParseAddr("192.0.2.1")
	fw1FromR1  = netip.MustParseAddr("198.51.100.2")  // fw1's eth0
	fw2FromR2  = netip.MustParseAddr("198.51.100.13") // fw2's eth1
	r2Server   = netip.MustParseAddr("203.0.113.1")
)

// traceLab runs asym trace on one end of the firewall-ecmp lab (here: its
// namespace) with the other as its peer, while the lab's own failing
// connection is tried (so a SYN_SENT socket holds the tuple on the client,
// as it would at 02:13).
func traceLab(t *testing.T, env *lab.Env, here, peer string, extra ...string) (traceReport, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.Try(ctx, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	args := append([]string{"trace", "--netns", here, "--wait", "300ms", "--peer", peer, "--peer-asym", asymBinary(t)}, extra...)
	args = append(args, strings.Fields(env.Checks[0].Flow)...)
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	var r traceReport
	if slices.Contains(extra, "--json") {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("the JSON does not parse: %v\n%s\n%s", err, out.String(), errb.String())
		}
	}
	return r, code, out.String() + errb.String()
}

// checkFirewallPair asserts what a trace of the firewall-ecmp lab must
// show, run on either end: the request through fw1, the reply through fw2,
// the paths parting at hop 2, and fw2 named as the device without state.
func checkFirewallPair(t *testing.T, r traceReport, code int, out string, here evidence.Role) {
	t.Helper()
	if code != exitFindings {
		t.Fatalf("exit %d, want %d (findings):\n%s", code, exitFindings, out)
	}
	f, rv := &r.Forward, &r.Reverse
	peerRole, fromFwd, fromRev := evidence.RoleServer, playbook.SideHere, playbook.SidePeer
	if here == evidence.RoleServer {
		peerRole, fromFwd, fromRev = evidence.RoleClient, playbook.SidePeer, playbook.SideHere
	}
	if r.Role != here || r.Peer == nil || r.Peer.Failure != nil || r.Peer.Role != peerRole {
		t.Fatalf("this end is the %s (%s), the peer must have traced as the %s: %+v\n%s", here, r.Role, peerRole, r.Peer, out)
	}
	if f.From != fromFwd || rv.From != fromRev || !f.Traced || !rv.Traced {
		t.Errorf("the request is traced by the client and the reply by the server: forward %q %v, reverse %q %v", f.From, f.Traced, rv.From, rv.Traced)
	}
	for _, c := range []struct {
		p    *evidence.TracePath
		ttl  int
		want netip.Addr
	}{{f, 1, fwR1Client}, {f, 2, fw1FromR1}, {rv, 1, r2Server}, {rv, 2, fw2FromR2}} {
		if h := c.p.Hop(c.ttl); h == nil || h.Addr != c.want {
			t.Errorf("%s hop %d: %+v, want %s", c.p.Direction, c.ttl, h, c.want)
		}
	}
	if f.Shape != evidence.ShapeSYN || rv.Shape != evidence.ShapeSYNACK || rv.Tuple != f.Tuple.Reverse() {
		t.Errorf("shapes %s / %s, tuples %s / %s: want SYNs and SYN-ACKs with the flow's tuple both ways", f.Shape, rv.Shape, f.Tuple, rv.Tuple)
	}
	if got := f.ArrivedHops(); got != 4 {
		t.Errorf("the server saw the request's probes arrive after %d hops, want 4: %+v", got, f.Arrived)
	}
	if rv.Reached || rv.LastAnswered() != 2 || rv.Control == nil || rv.Control.Hop(3) == nil || !rv.Control.Hop(3).Addr.IsValid() {
		t.Errorf("the SYN-ACKs must stop after fw2 (hop 2) while a SYN passes to hop 3: last %d, control %+v", rv.LastAnswered(), rv.Control)
	}
	if r.DivergesAt != 2 || r.BoundaryAddr != fw2FromR2 || r.BoundaryTTL != 2 {
		t.Errorf("diverges at %d (%s); boundary %s at the reply's hop %d (%s): want 2 and fw2 (%s) at hop 2", r.DivergesAt, r.Divergence, r.BoundaryAddr, r.BoundaryTTL, r.Boundary, fw2FromR2)
	}
	var got []string
	for _, fd := range r.Findings {
		got = append(got, string(fd.ID))
	}
	if !slices.Equal(got, []string{"state_missing_in_path", "path_diverges"}) {
		t.Fatalf("findings %v, want state_missing_in_path and path_diverges", got)
	}
	if title := r.Findings[0].Title; !strings.Contains(title, "request crosses 198.51.100.2 and the reply 198.51.100.13") {
		t.Errorf("the finding must name both members: %q", title)
	}
}

// TestTraceLab is asym trace --peer on the lab's firewall pair behind ECMP
// (README "Tracing the flow"), over ip netns exec and over ssh, and a dry
// run that sends nothing on either end.
func TestTraceLab(t *testing.T) {
	probetest.RequireRoot(t)
	asymBinary(t)
	t.Run("ip netns exec", func(t *testing.T) {
		t.Parallel()
		env := upScenario(t, "firewall-ecmp")
		client, server := env.Ends()
		peer := "ip netns exec " + server
		r, code, out := traceLab(t, env, client, peer, "--json")
		checkFirewallPair(t, r, code, out, evidence.RoleClient)
		if *record {
			recordTrace(t, r)
		}
		if !r.Forward.HeldBySocket || !strings.Contains(r.Forward.Held, "SYN_SENT") || r.Forward.Tuple != r.Flow {
			t.Errorf("the client's SYN_SENT socket holds the tuple and the probes still carry it: held %q, tuple %s", r.Forward.Held, r.Forward.Tuple)
		}
		_, code, text := traceLab(t, env, client, peer)
		if os.Getenv("ASYM_SHOW") != "" {
			t.Logf("asym trace --netns CLIENT --peer 'ip netns exec SERVER' %s\n%s", env.Checks[0].Flow, text)
		}
		for _, want := range []string{" 2 ≠ 198.51.100.2 ", "│ 198.51.100.13 ", "first stateful device without state: 198.51.100.13 (the reply's hop 2)", "CRITICAL state_missing_in_path"} {
			if !strings.Contains(text, want) {
				t.Errorf("the text lacks %q (exit %d):\n%s", want, code, text)
			}
		}
		r, code, out = traceLab(t, env, client, peer, "--json", "--no-send")
		if code != exitNotProven || r.Forward.Sent != 0 || r.Reverse.Sent != 0 || len(r.Forward.Plan) == 0 || len(r.Reverse.Plan) == 0 || r.Forward.Traced || r.Reverse.Traced {
			t.Errorf("--no-send: exit %d, sent %d and %d, plans %q and %q:\n%s", code, r.Forward.Sent, r.Reverse.Sent, r.Forward.Plan, r.Reverse.Plan, out)
		}
		// From the server, with the client as the peer: the client traces
		// the request while this end listens, then this end the reply.
		r, code, out = traceLab(t, env, server, "ip netns exec "+client, "--json")
		checkFirewallPair(t, r, code, out, evidence.RoleServer)
	})
	t.Run("ssh", func(t *testing.T) {
		t.Parallel()
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("the ssh client is not installed here")
		}
		srv := startSSHServer(t)
		env := upScenario(t, "firewall-ecmp")
		client, server := env.Ends()
		r, code, out := traceLab(t, env, client, srv.prefix("ip netns exec "+server), "--json")
		checkFirewallPair(t, r, code, out, evidence.RoleClient)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.execs) != 1 || !strings.Contains(srv.execs[0], "trace --json --timeout 3s --max-hops 30 --wait 300ms --observe-ids ") {
			t.Errorf("what the remote shell was given: %q", srv.execs)
		}
	})
}

// recordTrace writes the trace for the judge's tests in package playbook
// (go test ./cmd/asym -run TestTraceLab -record).
func recordTrace(t *testing.T, r traceReport) {
	t.Helper()
	b, err := json.MarshalIndent(r.Trace, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join("..", "..", "playbook", "testdata", "trace", "firewall-ecmp.json")
	if err := os.MkdirAll(filepath.Dir(fn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fn, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", fn)
}
