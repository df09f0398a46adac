package evidence

import "testing"

// TestThrough: the marks a packet carries after one hook's mark rules —
// the connmark pattern of a multi-WAN host, with and without the restore.
func TestThrough(t *testing.T) {
	setOnNew := MarkRule{Hook: "prerouting", Iif: "eth1", CtStates: CtStateNew, Sets: MarkConn, Value: 2}
	restore := MarkRule{Hook: "output", Sets: MarkPacket, Copy: true}
	in := Through([]MarkRule{setOnNew, restore}, "prerouting", "eth1", CtStateNew, MarkState{})
	if in != (MarkState{Conn: 2}) {
		t.Errorf("a new connection on eth1: %+v, want conn mark 2 and no packet mark", in)
	}
	if other := Through([]MarkRule{setOnNew}, "prerouting", "eth0", CtStateNew, MarkState{}); other.Conn != 0 {
		t.Errorf("a connection on eth0 is not marked: %+v", other)
	}
	if later := Through([]MarkRule{setOnNew}, "prerouting", "eth1", CtStateEstablished, MarkState{Conn: 2}); later.Conn != 2 {
		t.Errorf("an established packet keeps its connection's mark: %+v", later)
	}
	reply := Through([]MarkRule{setOnNew, restore}, "output", "", CtStateEstablished, MarkState{Conn: in.Conn})
	if reply != (MarkState{Packet: 2, Conn: 2, Restored: true}) {
		t.Errorf("the reply with the restore: %+v", reply)
	}
	if bare := Through([]MarkRule{setOnNew}, "output", "", CtStateEstablished, MarkState{Conn: 2}); bare.Packet != 0 || bare.Restored {
		t.Errorf("the reply without a restore carries no mark: %+v", bare)
	}
	save := []MarkRule{{Hook: "prerouting", Sets: MarkPacket, Value: 1}, {Hook: "prerouting", Sets: MarkConn, Copy: true}}
	if got := Through(save, "prerouting", "eth1", CtStateNew, MarkState{}); got != (MarkState{Packet: 1, Conn: 1}) {
		t.Errorf("meta mark set 0x1 ct mark set meta mark: %+v", got)
	}
}
