package distsync

import (
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest name, in bytes, that every backend accepts.
const MaxNameLen = 512

// ValidateName reports whether name follows the name rules shared by every
// backend: non-empty, at most MaxNameLen bytes, valid UTF-8, and no control
// characters (U+0000–U+001F, U+007F–U+009F). The error wraps
// ErrInvalidName. Every other character is allowed; backends encode names
// so that different names never share state ("a" and "a/b" are unrelated).
func ValidateName(name string) error {
	switch {
	case name == "":
		return Errorf(ErrInvalidName, nil, "empty name")
	case len(name) > MaxNameLen:
		return Errorf(ErrInvalidName, nil, "name is %d bytes, longer than %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return Errorf(ErrInvalidName, nil, "name %q is not valid UTF-8", name)
	}
	for i, r := range name {
		if unicode.IsControl(r) {
			return Errorf(ErrInvalidName, nil, "name %q has control character %U at byte %d", name, r, i)
		}
	}
	return nil
}
