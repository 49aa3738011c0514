package redisq

import (
	"strings"
	"testing"
)

// common.lua derives the sessions' channel prefix from its first key;
// the Go side builds the same text.
func TestScriptsAgree(t *testing.T) {
	if want := "local SP = string.match(H, '^[^{]*') .. 'session:'"; !strings.Contains(commonLua, want) {
		t.Errorf("common.lua does not define %s", want)
	}
	for _, p := range []string{DefaultPrefix, "app:", "a:b|c."} {
		k := KeysWith(p, "x{y}")
		if got, want := k.Holders[:strings.IndexByte(k.Holders, '{')]+"session:id", sessionChannel(p, "id"); got != want {
			t.Errorf("prefix %q: script channel %q, Go channel %q", p, got, want)
		}
	}
	for _, s := range scripts {
		if len(s.Hash()) != 40 {
			t.Errorf("script hash %q", s.Hash())
		}
	}
}
