package drops

// The running kernel's layout, read from its BTF at load time: where the
// fields the program reads sit in struct sk_buff, net_device, net and
// sock, where the tracepoint puts its arguments, and the names of the drop
// reasons. Nothing of it is hard-coded: offsets move with every kernel
// build and configuration, and reason values move between releases.

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// layout is what the program and the decoder need to know of this kernel.
type layout struct {
	// struct sk_buff
	skbDev, skbSk, skbHead, skbNetworkHeader, skbLen uint32
	// struct net_device
	devNet, devIfindex, devName uint32
	// struct sock: __sk_common.skc_net.net
	skNet uint32
	// struct net: ns.inum
	netInum uint32
	// The tracepoint's arguments as the program's context holds them, one
	// u64 each: skb, location, reason and, since Linux 6.11, rx_sk (the
	// receiving socket, for drops after the device is gone). ctxRxSk < 0
	// when this kernel's tracepoint has none.
	ctxSkb, ctxLocation, ctxReason, ctxRxSk int16
	// reasons names enum skb_drop_reason's values without their prefix;
	// subsystems names enum skb_drop_reason_subsys's (the upper 16 bits of
	// a reason that a subsystem such as openvswitch defines).
	reasons    map[uint32]string
	subsystems map[uint32]string
}

// errNoReasons is a kernel whose kfree_skb carries no drop reason.
var errNoReasons = errors.New("this kernel's kfree_skb tracepoint carries no drop reason (Linux 5.17 and later have one)")

// loadKernelSpec is btf.LoadKernelSpec, a variable so that tests can take
// the kernel's BTF away.
var loadKernelSpec = btf.LoadKernelSpec

// known is the running kernel's layout once read: the kernel does not
// change under a process, and reading it again costs some 15 ms.
var known struct {
	sync.Mutex
	l *layout
}

// readLayout reads the layout from the running kernel's BTF, once.
func readLayout() (*layout, error) {
	known.Lock()
	defer known.Unlock()
	if known.l != nil {
		return known.l, nil
	}
	spec, err := loadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's BTF (/sys/kernel/btf/vmlinux; the kernel needs CONFIG_DEBUG_INFO_BTF): %w", err)
	}
	l, err := layoutFrom(spec)
	if err != nil {
		return nil, err
	}
	known.l = l
	return l, nil
}

func layoutFrom(spec *btf.Spec) (*layout, error) {
	l := &layout{}
	if err := l.readArgs(spec); err != nil {
		return nil, err
	}
	if err := l.readReasons(spec); err != nil {
		return nil, err
	}
	type field struct {
		dst  *uint32
		typ  string
		path []string
	}
	for _, f := range []field{
		{&l.skbDev, "sk_buff", []string{"dev"}},
		{&l.skbSk, "sk_buff", []string{"sk"}},
		{&l.skbHead, "sk_buff", []string{"head"}},
		{&l.skbNetworkHeader, "sk_buff", []string{"network_header"}},
		{&l.skbLen, "sk_buff", []string{"len"}},
		{&l.devNet, "net_device", []string{"nd_net", "net"}},
		{&l.devIfindex, "net_device", []string{"ifindex"}},
		{&l.devName, "net_device", []string{"name"}},
		{&l.skNet, "sock", []string{"__sk_common", "skc_net", "net"}},
		{&l.netInum, "net", []string{"ns", "inum"}},
	} {
		var st *btf.Struct
		if err := spec.TypeByName(f.typ, &st); err != nil {
			return nil, fmt.Errorf("the kernel's BTF has no struct %s: %w", f.typ, err)
		}
		off, err := offsetOf(st, f.path)
		if err != nil {
			return nil, fmt.Errorf("struct %s: %w", f.typ, err)
		}
		*f.dst = off
	}
	return l, nil
}

// readArgs finds the tracepoint's arguments by their types in the
// prototype of btf_trace_kfree_skb, the function type a tp_btf program
// attaches to: its first parameter is the tracepoint's private data, and
// the rest are the arguments in the order the context holds them. On 6.18
// that is (skb, location, reason, rx_sk); before 6.11 there was no rx_sk,
// before 5.17 no reason.
func (l *layout) readArgs(spec *btf.Spec) error {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_kfree_skb", &td); err != nil {
		return fmt.Errorf("the kernel's BTF has no kfree_skb tracepoint (btf_trace_kfree_skb): %w", err)
	}
	ptr, _ := btf.UnderlyingType(td.Type).(*btf.Pointer)
	var proto *btf.FuncProto
	if ptr != nil {
		proto, _ = btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	}
	if proto == nil || len(proto.Params) < 2 {
		return fmt.Errorf("btf_trace_kfree_skb is not a function pointer with arguments: %v", td.Type)
	}
	l.ctxSkb, l.ctxLocation, l.ctxReason, l.ctxRxSk = -1, -1, -1, -1
	for i, p := range proto.Params[1:] {
		off := int16(i * 8)
		switch t := btf.UnderlyingType(p.Type).(type) {
		case *btf.Pointer:
			switch target := btf.UnderlyingType(t.Target).(type) {
			case *btf.Struct:
				if target.Name == "sk_buff" && l.ctxSkb < 0 {
					l.ctxSkb = off
				}
				if target.Name == "sock" && l.ctxRxSk < 0 {
					l.ctxRxSk = off
				}
			case *btf.Void:
				if l.ctxSkb >= 0 && l.ctxLocation < 0 {
					l.ctxLocation = off
				}
			}
		case *btf.Enum:
			if t.Name == "skb_drop_reason" {
				l.ctxReason = off
			}
		}
	}
	switch {
	case l.ctxSkb < 0:
		return fmt.Errorf("btf_trace_kfree_skb has no struct sk_buff argument: %v", proto)
	case l.ctxReason < 0:
		return errNoReasons
	case l.ctxLocation < 0:
		return fmt.Errorf("btf_trace_kfree_skb has no location argument: %v", proto)
	}
	return nil
}

// readReasons names the values of enum skb_drop_reason (and of the
// subsystems' reasons) as this kernel defines them.
func (l *layout) readReasons(spec *btf.Spec) error {
	var en *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &en); err != nil {
		return errNoReasons
	}
	l.reasons = make(map[uint32]string, len(en.Values))
	for _, v := range en.Values {
		l.reasons[uint32(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
	}
	l.subsystems = map[uint32]string{}
	var sub *btf.Enum
	if spec.TypeByName("skb_drop_reason_subsys", &sub) == nil {
		for _, v := range sub.Values {
			l.subsystems[uint32(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_SUBSYS_")
		}
	}
	return nil
}

// reasonName names a reason value: its enum name, or for a subsystem's
// reason (upper 16 bits set) the subsystem and the value within it.
func (l *layout) reasonName(code uint32) string {
	if n, ok := l.reasons[code]; ok && code>>16 == 0 {
		return n
	}
	if sub := code >> 16; sub != 0 {
		name, ok := l.subsystems[sub]
		if !ok {
			name = fmt.Sprintf("SUBSYS_%d", sub)
		}
		return fmt.Sprintf("%s:%d", name, code&0xffff)
	}
	return fmt.Sprintf("REASON_%d", code)
}

// offsetOf is the byte offset of a member path in st, descending into
// anonymous structs and unions on the way (sk_buff's network_header sits
// in an unnamed union inside an unnamed struct) and through typedefs
// (possible_net_t). A bitfield is refused: the program loads whole bytes.
func offsetOf(st *btf.Struct, path []string) (uint32, error) {
	var total uint32
	members := st.Members
	for i, name := range path {
		m, off, ok := findMember(members, name)
		if !ok {
			return 0, fmt.Errorf("no member %s", strings.Join(path[:i+1], "."))
		}
		if m.BitfieldSize != 0 || off%8 != 0 {
			return 0, fmt.Errorf("member %s is a bitfield", strings.Join(path[:i+1], "."))
		}
		total += off / 8
		if i+1 < len(path) {
			inner, ok := membersOf(m.Type)
			if !ok {
				return 0, fmt.Errorf("member %s is not a struct", strings.Join(path[:i+1], "."))
			}
			members = inner
		}
	}
	return total, nil
}

// findMember finds a named member, looking inside unnamed ones; off is in
// bits from the start of members' container.
func findMember(members []btf.Member, name string) (btf.Member, uint32, bool) {
	for _, m := range members {
		if m.Name == name {
			return m, uint32(m.Offset), true
		}
		if m.Name != "" {
			continue
		}
		if inner, ok := membersOf(m.Type); ok {
			if in, off, ok := findMember(inner, name); ok {
				return in, uint32(m.Offset) + off, true
			}
		}
	}
	return btf.Member{}, 0, false
}

// membersOf is the members of a struct or union, through typedefs.
func membersOf(t btf.Type) ([]btf.Member, bool) {
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		return c.Members, true
	case *btf.Union:
		return c.Members, true
	}
	return nil, false
}
