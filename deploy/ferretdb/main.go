// Command voices-ferretdb runs FerretDB (the MongoDB wire protocol over SQLite) for local runs
// and tests. FerretDB's own cmd/ferretdb cannot be built from the module proxy (it wants a
// generated version file that the module lacks); its embeddable package needs none.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB protocol on")
	dataDir := flag.String("data", "", "directory for the SQLite files (one per database)")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("-data is required")
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	server, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Handler:  "sqlite",
		// Each write transaction takes the database lock when it starts: two writers that
		// both read first and then upgrade would otherwise fail with "database is locked".
		SQLiteURL: "file:" + dir + "/?_txlock=immediate",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	fmt.Fprintf(os.Stderr, "voices-ferretdb listening on %s, data in %s\n", *listen, dir)
	server.Run(ctx)
}
