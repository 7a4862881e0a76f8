package main

import (
	"database/sql"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

// FerretDB 1.24's SQLite backend indexes _id as `_ferretdb_sjson->"_id"` but looks documents up
// by `_ferretdb_sjson->'$._id'`, an expression SQLite does not match to that index: every find,
// update and delete by _id reads the whole table, so their cost grows with the collection
// (measured: updates by _id at 180/s with 300 documents, 35/s with 3,000). idIndexer adds an
// index on the expression the lookups use to every collection's table. It runs under the write
// lock (no FerretDB write in between) after each write command, when a collection may be new.
type idIndexer struct {
	dir string
	mu  sync.Mutex
	dbs map[string]*sql.DB
	// Per database, the collections whose table had the index at its last check: a write to one
	// of them (most writes) needs no check, which would otherwise cost a query per write.
	indexed map[string]map[string]bool
}

// reshapingCommands may drop, rename or re-create a collection's table, so the next write to
// any collection of that database checks again.
var reshapingCommands = map[string]bool{"drop": true, "dropDatabase": true, "renameCollection": true}

func newIDIndexer(dir string) *idIndexer {
	return &idIndexer{dir: dir, dbs: map[string]*sql.DB{}, indexed: map[string]map[string]bool{}}
}

// afterWrite runs after each write command (under the write lock): the command may have made a
// new collection, whose table then gets the index.
func (x *idIndexer) afterWrite(command, database, collection string) {
	if reshapingCommands[command] {
		x.forget(database)
	} else if x.known(database, collection) {
		return
	}
	x.ensure(database)
}

func (x *idIndexer) known(database, collection string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return collection != "" && x.indexed[database][collection]
}

func (x *idIndexer) forget(database string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.indexed, database)
}

// all indexes every table of every database file already in the directory (a restart).
func (x *idIndexer) all() {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	for _, file := range files {
		x.ensure(strings.TrimSuffix(filepath.Base(file), ".sqlite"))
	}
}

// ensure indexes the tables of one database that do not have the index yet.
func (x *idIndexer) ensure(database string) {
	if database == "" || strings.ContainsAny(database, "/\\") {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	db, err := x.open(database)
	if err != nil {
		return // not created yet (the write failed), or unreadable: lookups stay as FerretDB makes them
	}
	// Tables without the index; asked each time (a dropped collection's table name comes back).
	rows, err := db.Query(`SELECT t.name FROM sqlite_master t WHERE t.type = 'table'
		AND t.name NOT LIKE '\_ferretdb\_%' ESCAPE '\' AND NOT EXISTS (SELECT 1 FROM sqlite_master i
		WHERE i.type = 'index' AND i.tbl_name = t.name AND i.name = t.name || '__voices_id')`)
	if err != nil {
		log.Printf("id index: listing tables of %s: %v", database, err)
		return
	}
	var tables []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			tables = append(tables, name)
		}
	}
	rows.Close()
	for _, table := range tables {
		quoted := strings.ReplaceAll(table, `"`, `""`)
		statement := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s__voices_id" ON "%s" (_ferretdb_sjson->'$._id')`, quoted, quoted)
		if _, err := db.Exec(statement); err != nil {
			log.Printf("id index: %s.%s: %v", database, table, err)
		}
	}
	x.indexed[database] = indexedCollections(db)
}

// indexedCollections names the collections (FerretDB's metadata maps each to its table) whose
// table has the index now; empty when the metadata cannot be read (every write checks again).
func indexedCollections(db *sql.DB) map[string]bool {
	collections := map[string]bool{}
	rows, err := db.Query(`SELECT c.name FROM _ferretdb_collections c WHERE EXISTS (SELECT 1
		FROM sqlite_master i WHERE i.type = 'index' AND i.name = c.table_name || '__voices_id')`)
	if err != nil {
		return collections
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if rows.Scan(&name) == nil {
			collections[name] = true
		}
	}
	return collections
}

func (x *idIndexer) open(database string) (*sql.DB, error) {
	if db, ok := x.dbs[database]; ok {
		return db, nil
	}
	path := filepath.Join(x.dir, database+".sqlite")
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	query := url.Values{"_pragma": {"busy_timeout(10000)"}}
	db, err := sql.Open("sqlite", "file:"+path+"?"+query.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	x.dbs[database] = db
	return db, nil
}

func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, db := range x.dbs {
		db.Close()
	}
}
