package zksync

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/distsync/distsync"
)

// NodePath returns the node of the primitive called name under root: root,
// "/", and the name as one path segment. Characters ZooKeeper cannot store
// in a path (U+D800–U+F8FF, U+FFF0–U+FFFF, and every character beyond the
// Basic Multilingual Plane, which Java stores as surrogates), '/', '%' and a
// leading '.' are percent-encoded as their UTF-8 bytes, so that every valid
// name maps to a valid node and two different names never to the same one
// ("a" and "a/b" are siblings, not parent and child). It fails with
// distsync.ErrInvalidName for a name that breaks distsync.ValidateName.
func NodePath(root, name string) (string, error) {
	if err := distsync.ValidateName(name); err != nil {
		return "", err
	}
	return root + "/" + encodeName(name), nil
}

func encodeName(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r == '%' || r == '/' || (r == '.' && i == 0) || unstorable(r) {
			var buf [utf8.UTFMax]byte
			n := utf8.EncodeRune(buf[:], r)
			for _, c := range buf[:n] {
				fmt.Fprintf(&b, "%%%02X", c)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unstorable reports whether ZooKeeper rejects r in a path (its PathUtils
// check works on Java's UTF-16 characters).
func unstorable(r rune) bool {
	return r >= 0xD800 && r <= 0xF8FF || r >= 0xFFF0 || r < 0x20 || r >= 0x7F && r <= 0x9F
}
