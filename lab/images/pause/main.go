// The lab's pod sandbox: holds a pod's namespaces until the kubelet stops it. Ours, because
// Kubernetes' own pause is C (build/pause) and the lab builds with the go command only.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
