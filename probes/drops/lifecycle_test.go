package drops_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/drops"
	"asym/probes/probetest"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bpfObjects are the BPF programs, maps and links a process holds, read
// from its descriptors (/proc/PID/fdinfo names each object's id): the
// witness pins nothing, so these are all there is of it.
type bpfObjects struct{ progs, maps, links []uint32 }

func objectsOf(t *testing.T, pid int) bpfObjects {
	t.Helper()
	var o bpfObjects
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		key, dst := "", (*[]uint32)(nil)
		switch target {
		case "anon_inode:bpf-prog":
			key, dst = "prog_id:", &o.progs
		case "anon_inode:bpf-map":
			key, dst = "map_id:", &o.maps
		case "anon_inode:bpf_link":
			key, dst = "link_id:", &o.links
		default:
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, key); ok {
				id, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
				*dst = append(*dst, uint32(id))
			}
		}
	}
	return o
}

// minus is what o holds and before does not.
func (o bpfObjects) minus(before bpfObjects) bpfObjects {
	not := func(a, b []uint32) (out []uint32) {
		for _, x := range a {
			if !contains(b, x) {
				out = append(out, x)
			}
		}
		return out
	}
	return bpfObjects{not(o.progs, before.progs), not(o.maps, before.maps), not(o.links, before.links)}
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkWitness checks that o is one tracing program named asym_drops, its
// two maps and its link.
func checkWitness(t *testing.T, o bpfObjects) {
	t.Helper()
	if len(o.progs) != 1 || len(o.maps) != 2 || len(o.links) != 1 {
		t.Fatalf("the witness holds %d programs, %d maps, %d links; want 1, 2, 1", len(o.progs), len(o.maps), len(o.links))
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(o.progs[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != drops.ProgramName || info.Type != ebpf.Tracing {
		t.Fatalf("program %q of type %s, want %q of type Tracing", info.Name, info.Type, drops.ProgramName)
	}
}

// waitGone waits up to 3s for every object to be freed (the kernel frees
// them after an RCU grace period once the last descriptor is closed).
func waitGone(t *testing.T, o bpfObjects) {
	t.Helper()
	alive := func() []string {
		var out []string
		for _, id := range o.progs {
			if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
				p.Close()
				out = append(out, fmt.Sprint("program ", id))
			}
		}
		for _, id := range o.maps {
			if m, err := ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
				m.Close()
				out = append(out, fmt.Sprint("map ", id))
			}
		}
		for _, id := range o.links {
			if l, err := link.NewFromID(link.ID(id)); err == nil {
				l.Close()
				out = append(out, fmt.Sprint("link ", id))
			}
		}
		return out
	}
	if !probetest.Poll(3*time.Second, func() bool { return len(alive()) == 0 }) {
		t.Fatalf("still in the kernel: %v", alive())
	}
}

// pinned lists what is pinned under /sys/fs/bpf with asym's names ("" and
// nothing when the filesystem is not mounted: then nothing can be pinned).
func pinned(t *testing.T) []string {
	t.Helper()
	var out []string
	filepath.WalkDir("/sys/fs/bpf", func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "asym") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestGoneOnCancel: when the stream's context ends, the program, its link
// and its maps leave the kernel, and the channel closes.
func TestGoneOnCancel(t *testing.T) {
	ns := probetest.NewNS(t)
	before := objectsOf(t, os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	ch := drops.Watch(ctx, target(t, ns), flow.Flow{Proto: flow.TCP, Src: addrPort("192.0.2.10:40000"), Dst: addrPort("203.0.113.10:8080")}, drops.Options{})
	u := <-ch
	if u.Err != nil {
		t.Fatal(u.Err)
	}
	during := objectsOf(t, os.Getpid()).minus(before)
	checkWitness(t, during)
	cancel()
	probetest.WaitClosed(t, ch, "the drop witness")
	if left := objectsOf(t, os.Getpid()).minus(before); len(left.progs)+len(left.maps)+len(left.links) != 0 {
		t.Fatalf("descriptors left open after the stream closed: %+v", left)
	}
	waitGone(t, during)
}

// TestGoneAfterSIGKILL runs the witness in another process, kills it with
// SIGKILL while it watches, and checks that the kernel freed everything:
// nothing is pinned, so nothing outlives the descriptors.
func TestGoneAfterSIGKILL(t *testing.T) {
	ns := probetest.NewNS(t)
	pinnedBefore := pinned(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ASYM_DROPS_HELPER="+ns.Name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	attached := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "attached") || strings.HasPrefix(l, "failed") {
				attached <- l
			}
		}
		close(attached)
	}()
	select {
	case l := <-attached:
		if !strings.HasPrefix(l, "attached") {
			t.Fatalf("the helper: %s", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the helper did not attach within 10s")
	}
	during := objectsOf(t, cmd.Process.Pid)
	checkWitness(t, during)
	if p := pinned(t); len(p) != len(pinnedBefore) {
		t.Fatalf("the witness pinned %v", p)
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitGone(t, during)
}

// TestMain runs the process TestGoneAfterSIGKILL kills when asked to:
// it watches a flow in the namespace it is given and waits to be killed.
func TestMain(m *testing.M) {
	if name := os.Getenv("ASYM_DROPS_HELPER"); name != "" {
		helperWitness(name)
		return
	}
	os.Exit(m.Run())
}

func helperWitness(name string) {
	tg, err := probes.OpenTarget(name, 0)
	if err != nil {
		fmt.Println("failed:", err)
		return
	}
	ch := drops.Watch(context.Background(), tg, flow.Flow{Proto: flow.TCP, Src: addrPort("192.0.2.10:40000"), Dst: addrPort("203.0.113.10:8080")}, drops.Options{})
	if u := <-ch; u.Err != nil {
		fmt.Println("failed:", u.Err)
		return
	}
	fmt.Println("attached")
	time.Sleep(time.Minute)
}

// TestUnavailable: without the kernel's BTF, or without the privilege to
// load BPF, the witness says why in its only update and closes.
func TestUnavailable(t *testing.T) {
	ns := probetest.NewNS(t)
	tg := target(t, ns)
	f := flow.Flow{Proto: flow.TCP, Src: addrPort("192.0.2.10:40000"), Dst: addrPort("203.0.113.10:8080")}
	t.Run("no BTF", func(t *testing.T) {
		restore := drops.SetKernelBTF(func() (*btf.Spec, error) { return nil, fmt.Errorf("open /sys/kernel/btf/vmlinux: %w", os.ErrNotExist) })
		defer restore()
		us := collect(t, drops.Watch(context.Background(), tg, f, drops.Options{}))
		if len(us) != 1 || us[0].Err == nil || !strings.HasPrefix(us[0].Err.Error(), "kernel drop witness is unavailable: read the kernel's BTF") || !errors.Is(us[0].Err, os.ErrNotExist) {
			t.Fatalf("%+v", us)
		}
	})
	t.Run("no CAP_BPF", func(t *testing.T) {
		// Capabilities are per thread: this one drops its own and dies
		// with the goroutine (it is never unlocked).
		got := make(chan []evidence.DropUpdate, 1)
		go func() {
			runtime.LockOSThread()
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				t.Error(err)
			}
			data[0].Effective, data[1].Effective = 0, 0
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				t.Error(err)
			}
			got <- collect(t, drops.Watch(context.Background(), tg, f, drops.Options{}))
		}()
		us := <-got
		if len(us) != 1 || us[0].Err == nil || !strings.Contains(us[0].Err.Error(), "unavailable: needs root (CAP_BPF and CAP_PERFMON") {
			t.Fatalf("%+v", us)
		}
		t.Log(us[0].Err)
	})
}

func collect(t *testing.T, ch <-chan evidence.DropUpdate) []evidence.DropUpdate {
	t.Helper()
	var out []evidence.DropUpdate
	timeout := time.After(5 * time.Second)
	for {
		select {
		case u, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, u)
		case <-timeout:
			t.Fatal("the stream did not close within 5s")
		}
	}
}
