// Command etcd is etcd's own server main, built here so that the test bed
// runs the exact etcd version that the pinned Kubernetes release was tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
