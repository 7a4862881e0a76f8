package main

import (
	"encoding/binary"
	"testing"
)

// bsonDoc builds a BSON document of string fields, in order.
func bsonDoc(fields ...string) []byte {
	var body []byte
	for i := 0; i+1 < len(fields); i += 2 {
		body = append(body, 0x02)
		body = append(body, fields[i]...)
		body = append(body, 0)
		value := binary.LittleEndian.AppendUint32(nil, uint32(len(fields[i+1])+1))
		body = append(body, value...)
		body = append(body, fields[i+1]...)
		body = append(body, 0)
	}
	doc := binary.LittleEndian.AppendUint32(nil, uint32(len(body)+5))
	return append(append(doc, body...), 0)
}

func opMsgOf(sections ...[]byte) []byte {
	message := make([]byte, headerSize+4)
	for _, section := range sections {
		message = append(message, section...)
	}
	binary.LittleEndian.PutUint32(message[0:4], uint32(len(message)))
	binary.LittleEndian.PutUint32(message[12:16], opMsg)
	return message
}

func TestTheCommandAndItsDatabaseAreReadFromTheBody(t *testing.T) {
	body := bsonDoc("update", "grants", "$db", "voices_consent")
	// A document sequence (kind 1) before the body must be skipped.
	sequence := append([]byte{1}, binary.LittleEndian.AppendUint32(nil, 4+8)...)
	sequence = append(sequence, "updates\x00"...)
	message := opMsgOf(sequence, append([]byte{0}, body...))
	got := commandBody(message)
	if firstFieldName(got) != "update" || !writeCommands[firstFieldName(got)] {
		t.Fatalf("command %q", firstFieldName(got))
	}
	if db := stringField(got, "$db"); db != "voices_consent" {
		t.Fatalf("$db %q", db)
	}
}

func TestReadsAreNotWrites(t *testing.T) {
	for _, name := range []string{"find", "count", "aggregate", "getMore", "hello", "ping", "listIndexes"} {
		message := opMsgOf(append([]byte{0}, bsonDoc(name, "x", "$db", "d")...))
		if writeCommands[firstFieldName(commandBody(message))] {
			t.Errorf("%s counted as a write", name)
		}
	}
}

func TestMalformedMessagesAreNotParsedPastTheirEnd(t *testing.T) {
	message := opMsgOf([]byte{0, 0xff, 0xff, 0xff, 0x7f})
	if commandBody(message) != nil {
		t.Fatal("a section longer than the message was accepted")
	}
	if stringField([]byte{5, 0, 0, 0}, "$db") != "" || firstFieldName(nil) != "" {
		t.Fatal("a short document gave a value")
	}
}
