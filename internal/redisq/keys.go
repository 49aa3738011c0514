package redisq

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/distsync/distsync"
)

// DefaultPrefix starts every key and channel when no prefix is given.
const DefaultPrefix = "distsync:"

// MaxPrefixLen is the longest prefix, in bytes.
const MaxPrefixLen = 256

// ValidatePrefix reports whether p can start every key and channel: not
// empty, at most MaxPrefixLen bytes, and free of '{' and '}' (they would
// move the hash tag), of the glob characters '*', '?', '[', ']' and '\'
// (so that an ACL pattern "~" + p + "*" means p literally), and of spaces
// and control characters. The error wraps ErrInvalidConfig.
func ValidatePrefix(p string) error {
	switch {
	case p == "":
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "empty prefix")
	case len(p) > MaxPrefixLen:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "prefix is %d bytes, longer than %d", len(p), MaxPrefixLen)
	case !utf8.ValidString(p):
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "prefix %q is not valid UTF-8", p)
	}
	for _, r := range p {
		if strings.ContainsRune("{}*?[]\\", r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return distsync.Errorf(distsync.ErrInvalidConfig, nil, "prefix %q has %q", p, r)
		}
	}
	return nil
}

// Keys are the Redis keys of one name. They share the hash tag "{enc}",
// where enc is the name with '%', '{' and '}' percent-encoded, so they live
// in one Redis Cluster slot and different names never share a tag: the tag
// is the text between the first '{' and the next '}', which enc cannot
// contain.
type Keys struct {
	Holders  string // sorted set: holder member -> server-time expiry (ms)
	Queue    string // sorted set: waiter member -> arrival number
	QueueExp string // sorted set: waiter member -> server-time expiry (ms)
	Tokens   string // hash: holder member -> fencing token; "v"+member -> election value; "i"+member -> identity
	Seq      string // counter: fencing tokens and arrival numbers
	Limit    string // semaphore limit, while anyone holds or waits
	History  string // capped stream of an election's changes
	Channel  string // pub/sub channel of an election's changes, for observers
	Forced   string // members ForceRelease removed, until their owners are told

	history bool // the name is an election: record changes in History

	// The eight script keys and the channel as interface values, made once:
	// a request's arguments are interface values, and making one of a
	// string allocates (see run). Shared by the copies of Keys, never
	// written after KeysWith.
	boxed []any
}

// encoder escapes the characters that could end or nest the hash tag.
var encoder = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// KeysFor returns the keys of name under DefaultPrefix.
func KeysFor(name string) Keys { return KeysWith(DefaultPrefix, name) }

// KeysWith returns the keys of name under prefix, a valid prefix (see
// ValidatePrefix).
func KeysWith(prefix, name string) Keys {
	base := prefix + "{" + encoder.Replace(name) + "}:"
	k := Keys{
		Holders:  base + "h",
		Queue:    base + "q",
		QueueExp: base + "qx",
		Tokens:   base + "tok",
		Seq:      base + "seq",
		Limit:    base + "limit",
		History:  base + "hist",
		Channel:  base + "ch",
		Forced:   base + "fr",
	}
	for _, key := range k.list() {
		k.boxed = append(k.boxed, key)
	}
	k.boxed = append(k.boxed, k.Channel)
	return k
}

// list returns the keys in the order the script expects them.
func (k Keys) list() []string {
	return []string{k.Holders, k.Queue, k.QueueExp, k.Tokens, k.Seq, k.Limit, k.History, k.Forced}
}

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag (the text between the first '{' and the next '}', if not empty)
// or of the whole key, modulo 16384.
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// checkSlot verifies that every key of k hashes to one Cluster slot, as
// the script needs (else Redis Cluster rejects it with CROSSSLOT).
func (k Keys) checkSlot() error {
	keys := k.list()
	for _, key := range keys[1:] {
		if Slot(key) != Slot(keys[0]) {
			return fmt.Errorf("redisq: keys %q and %q are in different cluster slots", keys[0], key)
		}
	}
	return nil
}
