package redisq

import (
	"strings"
	"testing"
)

// The session channel prefix is written in common.lua and in Go: they
// agree.
func TestScriptsAgree(t *testing.T) {
	if want := "local SP = '" + sessionChannelPrefix + "'"; !strings.Contains(commonLua, want) {
		t.Errorf("common.lua does not define %s", want)
	}
	for _, s := range scripts {
		if len(s.Hash()) != 40 {
			t.Errorf("script hash %q", s.Hash())
		}
	}
}
