// Command pause is the pod sandbox process of the local cluster's real nodes: it holds the
// pod's namespaces, reaps orphaned children (it is PID 1 of the pod when process namespaces
// are shared) and exits on SIGINT or SIGTERM. The C original lives in the kubernetes tree
// (build/pause), which is no Go package; this is the same behaviour.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
