package drops

import "github.com/cilium/ebpf/btf"

// What the kernel tests (package drops_test, which imports probes for a
// namespace) reach inside.

// SetKernelBTF replaces how the kernel's BTF is read, and returns a func
// that restores it; the layout read so far is forgotten both times.
func SetKernelBTF(load func() (*btf.Spec, error)) (restore func()) {
	known.Lock()
	old := loadKernelSpec
	loadKernelSpec, known.l = load, nil
	known.Unlock()
	return func() {
		known.Lock()
		loadKernelSpec, known.l = old, nil
		known.Unlock()
	}
}
