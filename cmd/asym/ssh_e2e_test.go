package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"asym/playbook"
	"asym/probes/probetest"
)

// sshServer is a minimal SSH server for the --peer test: it accepts one
// client key and runs each exec request the way sshd does, with the
// user's shell (sh -c COMMAND), so the command line asym's ssh sends is
// parsed by a real remote shell. No machine here has sshd; the client is
// the real ssh.
type sshServer struct {
	addr    string
	keyFile string // the client's private key
	mu      sync.Mutex
	execs   []string // the command lines the server was asked to run
}

func startSSHServer(t *testing.T) *sshServer {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	allowed, _ := ssh.NewPublicKey(clientPub)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), allowed.Marshal()) {
			return nil, nil
		}
		return nil, io.EOF
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{addr: ln.Addr().String(), keyFile: keyFile}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(ctx, c, cfg) }()
		}
	}()
	return s
}

func (s *sshServer) serve(ctx context.Context, c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range in {
				if req.Type != "exec" {
					req.Reply(req.Type == "env", nil)
					continue
				}
				var p struct{ Command string }
				if ssh.Unmarshal(req.Payload, &p) != nil {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				s.mu.Lock()
				s.execs = append(s.execs, p.Command)
				s.mu.Unlock()
				cmd := exec.CommandContext(ctx, "sh", "-c", p.Command)
				// As sshd does: the client's standard input, ended when
				// the client sends EOF (asym trace's peer waits for it).
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				cmd.WaitDelay = 2 * time.Second // a client that never sends EOF must not hold the exit status
				code := 0
				if err := cmd.Run(); err != nil {
					code = 255
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
				}
				status := make([]byte, 4)
				binary.BigEndian.PutUint32(status, uint32(code))
				ch.SendRequest("exit-status", false, status)
				return
			}
		}()
	}
}

// prefix is the --peer value that reaches this server with the real ssh
// client, without prompts (a fresh key, no known_hosts).
func (s *sshServer) prefix(then string) string {
	host, port, _ := net.SplitHostPort(s.addr)
	return "ssh -p " + port + " -i " + s.keyFile + " -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR " + host + " " + then
}

// TestPeerOverSSH is the README's ssh form end to end: the real ssh client
// carries asym collect to a server that runs it with sh -c, as sshd does,
// into the server namespace of the two-NIC lab; the joined report must be
// the one ip netns exec gives.
func TestPeerOverSSH(t *testing.T) {
	probetest.RequireRoot(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("the ssh client is not installed here: probes/peer tests ssh's quoting with a fake")
	}
	bin := asymBinary(t)
	srv := startSSHServer(t)
	env := upScenario(t, "two-nics-fabric")
	client, server := env.Ends()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(1500 * time.Millisecond) // ssh connects first
		env.Try(ctx, 3*time.Second)
	}()
	var out, errb bytes.Buffer
	args := append([]string{"check", "--netns", client, "--watch", "5s", "--json",
		"--peer", srv.prefix("ip netns exec " + server), "--peer-asym", bin}, strings.Fields(env.Checks[0].Flow)...)
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	var r peerReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Peer == nil || r.Peer.Failure != nil {
		t.Fatalf("the peer over ssh: %+v", r.Peer)
	}
	f := r.finding("reply_lost_in_path")
	if f == nil || f.Side != playbook.SideBoth {
		t.Fatalf("want reply_lost_in_path across both ends over ssh, got %v\n%q", ids(r.Findings), r.Across)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.execs) != 1 || !strings.Contains(srv.execs[0], "collect --json --timeout 3s --watch 5s -- tcp 203.0.113.10:40000 198.51.100.11:8080") {
		t.Errorf("what the remote shell was given: %q", srv.execs)
	}

	// A peer that refuses the key: a finding about the peer, the local
	// report complete.
	out.Reset()
	errb.Reset()
	bad := strings.Replace(srv.prefix("true"), srv.keyFile, filepath.Join(t.TempDir(), "none"), 1)
	args = append([]string{"check", "--netns", client, "--json", "--peer", bad, "--peer-asym", bin}, strings.Fields(env.Checks[0].Flow)...)
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	r = peerReport{}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.finding("peer_unreachable") == nil {
		t.Errorf("a refused key: %v", ids(r.Findings))
	}
}
