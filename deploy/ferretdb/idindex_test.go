package main

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// fakeDatabase makes a database file shaped like FerretDB's: its metadata table naming each
// collection's table, and the tables.
func fakeDatabase(t *testing.T, dir, database string, collections map[string]string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, database+".sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	statements := []string{`CREATE TABLE IF NOT EXISTS _ferretdb_collections (name TEXT, table_name TEXT, settings TEXT)`}
	for name, table := range collections {
		statements = append(statements,
			`CREATE TABLE IF NOT EXISTS "`+table+`" (_ferretdb_sjson TEXT)`,
			`INSERT INTO _ferretdb_collections (name, table_name, settings) VALUES ('`+name+`', '`+table+`', '{}')`)
	}
	for _, statement := range statements {
		if _, err := db.Exec(statement); err != nil {
			t.Fatal(err)
		}
	}
}

func hasIndex(t *testing.T, x *idIndexer, database, table string) bool {
	t.Helper()
	db, err := x.open(database)
	if err != nil {
		t.Fatal(err)
	}
	var count int
	err = db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, table+"__voices_id").Scan(&count)
	if err != nil {
		t.Fatal(err)
	}
	return count == 1
}

func TestAfterWriteIndexesNewCollectionsAndRemembersThem(t *testing.T) {
	dir := t.TempDir()
	fakeDatabase(t, dir, "app", map[string]string{"responses": "responses_1"})
	x := newIDIndexer(dir)
	defer x.close()

	x.afterWrite("insert", "app", "responses")
	if !hasIndex(t, x, "app", "responses_1") || !x.known("app", "responses") {
		t.Fatal("the first write to a collection indexes its table and remembers it")
	}

	// A collection made later (FerretDB adds a table and a metadata row) is indexed on its first write.
	fakeDatabase(t, dir, "app", map[string]string{"tallies": "tallies_2"})
	if x.known("app", "tallies") {
		t.Fatal("a collection not seen yet is not known")
	}
	x.afterWrite("update", "app", "tallies")
	if !hasIndex(t, x, "app", "tallies_2") || !x.known("app", "tallies") {
		t.Fatal("a new collection's table gets the index on its first write")
	}

	// A drop forgets what was known: a table re-created under the same name is checked again.
	x.afterWrite("drop", "app", "tallies")
	db, _ := x.open("app")
	if _, err := db.Exec(`DROP INDEX "tallies_2__voices_id"`); err != nil {
		t.Fatal(err)
	}
	x.afterWrite("dropDatabase", "app", "")
	x.afterWrite("insert", "app", "tallies")
	if !hasIndex(t, x, "app", "tallies_2") {
		t.Fatal("after a drop, the next write checks the tables again")
	}
}
