package distsync

import (
	"fmt"
	"os"
	"unicode"
	"unicode/utf8"
)

// MaxIdentityLen is the longest holder identity, in bytes.
const MaxIdentityLen = 256

// DefaultIdentity returns the holder identity a Session records when none
// is given: the host name and the process id, as "host:pid" ("unknown" for
// a host name the system cannot tell).
func DefaultIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

// ValidateIdentity reports whether id can be recorded as a holder's
// identity: non-empty, at most MaxIdentityLen bytes of valid UTF-8, with no
// control characters. The error wraps ErrInvalidConfig.
func ValidateIdentity(id string) error {
	switch {
	case id == "":
		return Errorf(ErrInvalidConfig, nil, "empty identity")
	case len(id) > MaxIdentityLen:
		return Errorf(ErrInvalidConfig, nil, "identity is %d bytes, longer than %d", len(id), MaxIdentityLen)
	case !utf8.ValidString(id):
		return Errorf(ErrInvalidConfig, nil, "identity %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return Errorf(ErrInvalidConfig, nil, "identity %q has control character %U", id, r)
		}
	}
	return nil
}
