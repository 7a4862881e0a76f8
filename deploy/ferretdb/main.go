// Command voices-ferretdb runs FerretDB (the MongoDB wire protocol over SQLite) for local runs
// and tests. FerretDB's own cmd/ferretdb cannot be built from the module proxy (it wants a
// generated version file that the module lacks); its embeddable package needs none.
//
// FerretDB 1.x carries out an update as "read the matching documents, change them in memory,
// write them back" with nothing between the read and the write, so two concurrent updates of
// one document can both succeed on a stale read: a conditional update (compare-and-set) is not
// atomic and one writer's change can undo another's. MongoDB applies each write to a document
// atomically, and the services rely on that. So FerretDB listens on a private Unix socket only,
// and this program serves the public address, passing every command through but one write
// command at a time (reads still run side by side). See writeguard.go, and idindex.go for the
// index that makes lookups by _id use an index at all.
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
	// A short private path: Unix socket paths are limited to about 100 bytes.
	socketDir, err := os.MkdirTemp("", "voices-ferretdb-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(socketDir)
	socket := filepath.Join(socketDir, "ferretdb.sock")

	server, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{Unix: socket},
		Handler:  "sqlite",
		// Each write transaction takes the database lock when it starts: two writers that
		// both read first and then upgrade would otherwise fail with "database is locked".
		// synchronous=normal with FerretDB's WAL journal: a commit is written to the WAL without
		// waiting for the disk (fsync at checkpoints only). Whatever was committed survives a
		// crash of this process or of any client; an operating-system crash or a power loss may
		// lose the last commits before the checkpoint, never corrupt the file.
		SQLiteURL: "file:" + dir + "/?_txlock=immediate&_pragma=synchronous(normal)",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	done := make(chan struct{})
	go func() {
		server.Run(ctx)
		close(done)
	}()
	if err := waitForSocket(ctx, socket); err != nil {
		log.Fatal(err)
	}
	ids := newIDIndexer(dir)
	defer ids.close()
	ids.all()
	guard, err := newWriteGuard(*listen, socket, ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "voices-ferretdb listening on %s, data in %s\n", *listen, dir)
	go guard.serve()
	<-ctx.Done()
	guard.close()
	<-done
}
