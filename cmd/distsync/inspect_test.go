package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var status = distsync.Status{
	Name:  "jobs/x",
	Limit: 3,
	Holders: []distsync.Holder{
		{Token: 7, Identity: "a:1", Mode: distsync.ModePermit, Weight: 2, Since: now.Add(-1500 * time.Millisecond), TTL: 2345678 * time.Microsecond},
	},
	Waiters: []distsync.Holder{
		{Token: 9, Identity: "b:2", Mode: distsync.ModePermit, Weight: 1},
		{Token: 8, Identity: "a:1", Mode: distsync.ModePermit, Weight: 1},
	},
}

func TestInspectText(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusText(&b, status, now); err != nil {
		t.Fatal(err)
	}
	want := `ROLE    TOKEN  IDENTITY  MODE    WEIGHT  AGE   TTL
holder  7      a:1       permit  2       1.5s  2.346s
waiter  9      b:2       permit  1       -     -
waiter  8      a:1       permit  1       -     -
limit: 3
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestInspectJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusJSON(&b, status); err != nil {
		t.Fatal(err)
	}
	want := `{"name":"jobs/x","limit":3,"holders":[{"token":7,"identity":"a:1","mode":"permit","weight":2,"since":"2026-01-02T03:04:03.5Z","ttl_ms":2345}],` +
		`"waiters":[{"token":9,"identity":"b:2","mode":"permit","weight":1,"ttl_ms":0},{"token":8,"identity":"a:1","mode":"permit","weight":1,"ttl_ms":0}]}` + "\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeStatusJSON(&b, distsync.Status{Name: "idle"}); err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"idle","limit":0,"holders":[],"waiters":[]}` + "\n"; b.String() != want {
		t.Errorf("idle: got %s want %s", b.String(), want)
	}
}

func TestPickHolder(t *testing.T) {
	two := status
	two.Holders = append(two.Holders, distsync.Holder{Token: 10, Identity: "c:3", Mode: distsync.ModePermit, Weight: 1})
	tests := []struct {
		st     distsync.Status
		arg    string
		hasArg bool
		token  uint64
		code   int
	}{
		{status, "", false, 7, exitOK},   // the only holder
		{status, "9", true, 9, exitOK},   // a waiter by token
		{status, "b:2", true, 9, exitOK}, // by identity
		{status, "a:1", true, 0, exitUsage},
		{status, "99", true, 0, exitNotFound},
		{status, "nobody", true, 0, exitNotFound},
		{two, "", false, 0, exitUsage},
		{distsync.Status{Name: "idle"}, "", false, 0, exitNotFound},
	}
	for _, tt := range tests {
		c := &config{name: "jobs/x", arg: tt.arg, hasArg: tt.hasArg, stderr: io.Discard}
		var msg strings.Builder
		c.stderr = &msg
		h, code := pickHolder(c, tt.st)
		if code != tt.code || (code == exitOK && h.Token != tt.token) {
			t.Errorf("pickHolder(%q, %d holders) = token %d, exit %d; want %d, %d", tt.arg, len(tt.st.Holders), h.Token, code, tt.token, tt.code)
		}
		if code != exitOK && msg.Len() == 0 {
			t.Errorf("pickHolder(%q): exit %d without a message", tt.arg, code)
		}
	}
}
