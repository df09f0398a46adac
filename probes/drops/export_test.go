package drops

import "github.com/cilium/ebpf/btf"

// What the kernel tests (package drops_test, which imports probes for a
// namespace) reach inside.

// SetKernelBTF replaces how the kernel's BTF is read, and returns a func
// that restores it.
func SetKernelBTF(load func() (*btf.Spec, error)) (restore func()) {
	old := loadKernelSpec
	loadKernelSpec = load
	return func() { loadKernelSpec = old }
}
