// Command registry is upstream distribution's registry with the storage drivers a machine's own
// registry uses.
//
// Upstream's main links every storage driver; this one links the same registry with the filesystem and
// in-memory drivers (and the storage middlewares that need no cloud SDK), leaving out azure, gcs, s3-aws
// and cloudfront, whose SDKs are most of a cold build. A configuration naming one of them is refused at
// start by the registry's own check of the storage driver.
package main

import (
	_ "net/http/pprof" // the debug listener's profiles, as upstream's

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/silly"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/proxy"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/redirect"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/rewrite"
)

func main() {
	// The serve and garbage-collect commands exit by themselves on failure, with their own message.
	_ = registry.RootCmd.Execute()
}
