package distsync_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/distsync/distsync"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"jobs/nightly", true},
		{"a", true},
		{"a/b", true},
		{"%2F{x}*é 日本", true},
		{strings.Repeat("x", distsync.MaxNameLen), true},
		{"", false},
		{strings.Repeat("x", distsync.MaxNameLen+1), false},
		{"nul\x00byte", false},
		{"tab\tname", false},
		{"del\x7f", false},
		{"c1\u0085control", false},
		{"bad\xffutf8", false},
	} {
		err := distsync.ValidateName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
}

func TestErrorfWraps(t *testing.T) {
	cause := errors.New("connection refused")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{distsync.Errorf(distsync.ErrLost, nil, ""), "distsync: lease lost"},
		{distsync.Errorf(distsync.ErrLost, nil, "key %q deleted", "k"), `distsync: lease lost: key "k" deleted`},
		{distsync.Errorf(distsync.ErrUnavailable, cause, ""), "distsync: backend unavailable: connection refused"},
		{distsync.Errorf(distsync.ErrUnavailable, cause, "enqueue"), "distsync: backend unavailable: enqueue: connection refused"},
	} {
		if tc.err.Error() != tc.want {
			t.Errorf("got %q, want %q", tc.err, tc.want)
		}
	}
	err := distsync.Errorf(distsync.ErrUnavailable, cause, "enqueue")
	if !errors.Is(err, distsync.ErrUnavailable) || !errors.Is(err, cause) {
		t.Errorf("%v does not wrap both the sentinel and the cause", err)
	}
}
