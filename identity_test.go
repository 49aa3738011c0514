package distsync_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/distsync/distsync"
)

func TestDefaultIdentity(t *testing.T) {
	id := distsync.DefaultIdentity()
	if !strings.HasSuffix(id, ":"+strconv.Itoa(os.Getpid())) {
		t.Fatalf("DefaultIdentity() = %q, want host:%d", id, os.Getpid())
	}
	if err := distsync.ValidateIdentity(id); err != nil {
		t.Fatalf("the default identity is invalid: %v", err)
	}
}

func TestValidateIdentity(t *testing.T) {
	for _, id := range []string{"", strings.Repeat("x", distsync.MaxIdentityLen+1), "a\nb", "\xff"} {
		if err := distsync.ValidateIdentity(id); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("ValidateIdentity(%q) = %v, want ErrInvalidConfig", id, err)
		}
	}
	for _, id := range []string{"web-7:4242", "pod/ns/name", "ünïcode"} {
		if err := distsync.ValidateIdentity(id); err != nil {
			t.Errorf("ValidateIdentity(%q) = %v", id, err)
		}
	}
}
