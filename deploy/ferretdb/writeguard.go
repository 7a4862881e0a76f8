package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"
)

const (
	opMsg          = 2013
	flagMoreToCome = 1 << 1
	headerSize     = 16
	// MongoDB's maxMessageSizeBytes.
	maxMessageSize = 48_000_000
	// Commands that take longer are logged: most likely they read a whole collection.
	slowCommand = 250 * time.Millisecond
)

// writeCommands change documents, indexes or collections. Everything else (find, count,
// aggregate, getMore, hello, ping, ...) reads and is passed through without waiting.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
	"createIndexes": true, "dropIndexes": true, "drop": true, "dropDatabase": true, "create": true,
	"renameCollection": true, "collMod": true,
}

// writeGuard serves the MongoDB wire protocol on a TCP address and passes each client
// connection's messages to its own connection to FerretDB, holding one lock around every
// write command and its reply: one write at a time, each one atomic as in MongoDB.
type writeGuard struct {
	listener net.Listener
	upstream string
	writes   sync.Mutex
	ids      *idIndexer
}

func newWriteGuard(listen, upstream string, ids *idIndexer) (*writeGuard, error) {
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	return &writeGuard{listener: listener, upstream: upstream, ids: ids}, nil
}

func (g *writeGuard) serve() {
	for {
		client, err := g.listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Printf("accept: %v", err)
			}
			return
		}
		go g.relay(client)
	}
}

func (g *writeGuard) close() {
	g.listener.Close()
}

func (g *writeGuard) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("unix", g.upstream)
	if err != nil {
		log.Printf("cannot reach FerretDB: %v", err)
		return
	}
	defer server.Close()
	for {
		request, err := readMessage(client)
		if err != nil {
			return // the client went away, or sent something that is not the wire protocol
		}
		body := commandBody(request)
		write := body != nil && writeCommands[firstFieldName(body)]
		if write {
			g.writes.Lock()
		}
		started := time.Now()
		err = exchange(request, client, server)
		if took := time.Since(started); took > slowCommand {
			name := firstFieldName(body)
			log.Printf("slow %s on %s.%s: %v", name, stringField(body, "$db"), stringField(body, name), took)
		}
		if write {
			name := firstFieldName(body)
			g.ids.afterWrite(name, stringField(body, "$db"), stringField(body, name))
			g.writes.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// exchange sends one request and copies its replies back: none when the request says no reply
// is wanted (moreToCome), several while a reply says more follow (exhaust cursors).
func exchange(request []byte, client, server net.Conn) error {
	if _, err := server.Write(request); err != nil {
		return err
	}
	if moreToCome(request) {
		return nil
	}
	for {
		reply, err := readMessage(server)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) {
			return nil
		}
	}
}

func readMessage(conn net.Conn) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(conn, header[:]); err != nil {
		return nil, err
	}
	length := int(int32(binary.LittleEndian.Uint32(header[:])))
	if length < headerSize || length > maxMessageSize {
		return nil, fmt.Errorf("message length %d out of range", length)
	}
	message := make([]byte, length)
	copy(message, header[:])
	if _, err := io.ReadFull(conn, message[4:]); err != nil {
		return nil, err
	}
	return message, nil
}

func opCode(message []byte) int32 {
	return int32(binary.LittleEndian.Uint32(message[12:16]))
}

func moreToCome(message []byte) bool {
	if opCode(message) != opMsg || len(message) < headerSize+4 {
		return false
	}
	return binary.LittleEndian.Uint32(message[headerSize:headerSize+4])&flagMoreToCome != 0
}

// commandBody is an OP_MSG's body section (kind 0): the command document, or nil.
func commandBody(message []byte) []byte {
	if opCode(message) != opMsg || len(message) < headerSize+4 {
		return nil // legacy opcodes: only the driver's first handshake, which writes nothing
	}
	sections := message[headerSize+4:]
	for len(sections) > 0 {
		kind := sections[0]
		sections = sections[1:]
		if len(sections) < 4 {
			return nil
		}
		size := int(int32(binary.LittleEndian.Uint32(sections[:4])))
		if size < 5 || size > len(sections) {
			return nil
		}
		if kind == 0 {
			return sections[:size]
		}
		sections = sections[size:] // kind 1: a document sequence; its size comes first as well
	}
	return nil
}

// firstFieldName is the command's name: the first field of its document.
func firstFieldName(document []byte) string {
	if len(document) < 6 {
		return ""
	}
	name := document[5:] // after the size (4 bytes) and the first field's type (1 byte)
	end := bytes.IndexByte(name, 0)
	if end < 0 {
		return ""
	}
	return string(name[:end])
}

// stringField is the value of a top-level string field of a BSON document ("" if absent).
func stringField(document []byte, wanted string) string {
	if len(document) < 5 {
		return ""
	}
	rest := document[4 : len(document)-1]
	for len(rest) > 0 {
		kind := rest[0]
		end := bytes.IndexByte(rest[1:], 0)
		if end < 0 {
			return ""
		}
		name := string(rest[1 : 1+end])
		rest = rest[2+end:]
		size := bsonValueSize(kind, rest)
		if size < 0 || size > len(rest) {
			return ""
		}
		if name == wanted && kind == 0x02 && size >= 5 {
			return string(rest[4 : size-1])
		}
		rest = rest[size:]
	}
	return ""
}

// bsonValueSize is how many bytes a value of this BSON type takes at the start of b (-1: unknown).
func bsonValueSize(kind byte, b []byte) int {
	fixed := map[byte]int{0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
		0x7F: 0, 0xFF: 0}
	if n, ok := fixed[kind]; ok {
		return n
	}
	if len(b) < 4 {
		return -1
	}
	n := int(int32(binary.LittleEndian.Uint32(b[:4])))
	switch kind {
	case 0x02, 0x0D, 0x0E: // string, JavaScript, symbol: length then bytes
		return 4 + n
	case 0x03, 0x04: // document, array: the length includes itself
		return n
	case 0x05: // binary: length, subtype, bytes
		return 5 + n
	}
	return -1
}

// waitForSocket waits until FerretDB accepts connections on its socket.
func waitForSocket(ctx context.Context, path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := os.Stat(path); err == nil {
			if conn, err := net.Dial("unix", path); err == nil {
				conn.Close()
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("FerretDB did not open %s within 30s", path)
}
