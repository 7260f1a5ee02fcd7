// Command etcd is go.etcd.io/etcd/server/v3/etcdmain wrapped in a main
// package, so that it can be built from this wrapper module at the etcd
// version pinned in hack/versions.env.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
