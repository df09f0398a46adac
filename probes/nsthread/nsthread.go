// Package nsthread runs work on an OS thread of its own, for what only a
// thread's network namespace decides: sockets without a namespace option,
// /proc/sys/net and /proc/thread-self/net. The probes, the lab and the
// tests share it, so the one subtle rule below is written once.
package nsthread

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Run runs fn on its own goroutine, on a locked OS thread that is never
// unlocked, so the runtime ends the thread when fn returns and no other
// goroutine ever runs in the namespace fn moved it to. That thread is never
// the process's main thread: the runtime cannot end that one and parks it
// for good instead (mexit in runtime/proc.go), in whatever namespace fn
// left it, and /proc/self follows the main thread: the process would then
// report that namespace as its own in /proc/self/ns/net (which
// probes.OpenTarget opens as "the host") and read it in /proc/net.
func Run(fn func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			fn()
			return
		}
		// The main thread: keep it while fn runs on another thread (a
		// locked thread runs only its own goroutine), then give it back to
		// the scheduler as it was.
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			defer close(done)
			fn()
		}()
		<-done
		runtime.UnlockOSThread()
	}()
}
