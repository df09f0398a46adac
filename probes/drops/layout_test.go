package drops

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// kernelSpec is the running kernel's BTF, readable without root
// (/sys/kernel/btf/vmlinux is 0444); the test skips without it, and fails
// under CI=true, where the kernel has it.
func kernelSpec(t *testing.T) *btf.Spec {
	t.Helper()
	s, err := btf.LoadKernelSpec()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI runs on a kernel with BTF: %v", err)
		}
		t.Skipf("this kernel has no BTF: %v", err)
	}
	return s
}

// TestLayoutFromKernel reads this kernel's offsets and checks them against
// what the BTF says directly, and the reason names against the enum: no
// number below is assumed, only how they must relate.
func TestLayoutFromKernel(t *testing.T) {
	s := kernelSpec(t)
	l, err := layoutFrom(s)
	if err != nil {
		t.Fatal(err)
	}
	var skb *btf.Struct
	if err := s.TypeByName("sk_buff", &skb); err != nil {
		t.Fatal(err)
	}
	for name, off := range map[string]uint32{"sk": l.skbSk, "head": l.skbHead, "len": l.skbLen} {
		m, _, ok := findMember(skb.Members, name)
		if !ok || m.Offset.Bytes() != off {
			t.Errorf("sk_buff.%s at %d, BTF says %v", name, off, m.Offset)
		}
	}
	// network_header is in an unnamed union inside an unnamed struct: it
	// is found, 2 bytes before mac_header.
	mac, err := offsetOf(skb, []string{"mac_header"})
	if err != nil || l.skbNetworkHeader+2 != mac {
		t.Errorf("network_header at %d, mac_header at %d (%v)", l.skbNetworkHeader, mac, err)
	}
	if l.ctxSkb != 0 || l.ctxLocation != 8 || l.ctxReason != 16 {
		t.Errorf("context: skb %d location %d reason %d, want 0 8 16", l.ctxSkb, l.ctxLocation, l.ctxReason)
	}
	var en *btf.Enum
	if err := s.TypeByName("skb_drop_reason", &en); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range en.Values {
		seen[l.reasonName(uint32(v.Value))] = true
	}
	for _, want := range []string{"IP_RPFILTER", "NETFILTER_DROP", "NEIGH_FAILED", "NOT_SPECIFIED"} {
		if !seen[want] {
			t.Errorf("no reason %s among %d", want, len(en.Values))
		}
	}
	if got := l.reasonName(2<<16 | 3); got != "OPENVSWITCH:3" && got != "SUBSYS_2:3" {
		t.Errorf("a subsystem's reason reads %q", got)
	}
}

// TestLayoutOldKernel: a kfree_skb without a reason argument (before
// 5.17), or without the enum, is errNoReasons.
func TestLayoutOldKernel(t *testing.T) {
	skb := &btf.Struct{Name: "sk_buff", Size: 8}
	void := &btf.Void{}
	proto := &btf.FuncProto{Return: void, Params: []btf.FuncParam{
		{Type: &btf.Pointer{Target: void}}, {Type: &btf.Pointer{Target: skb}}, {Type: &btf.Pointer{Target: void}},
	}}
	spec := buildSpec(t, &btf.Typedef{Name: "btf_trace_kfree_skb", Type: &btf.Pointer{Target: proto}})
	if _, err := layoutFrom(spec); !errors.Is(err, errNoReasons) {
		t.Fatalf("a kfree_skb without a reason: %v", err)
	}
	if _, err := layoutFrom(buildSpec(t, &btf.Int{Name: "int", Size: 4})); err == nil {
		t.Fatal("a BTF without the tracepoint gave a layout")
	}
}

func buildSpec(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
