package redisq

import "strings"

// keyPrefix starts every key and channel of every name.
const keyPrefix = "distsync:"

// Keys are the Redis keys of one name. They share the hash tag "{enc}",
// where enc is the name with '%', '{' and '}' percent-encoded, so they live
// in one Redis Cluster slot and different names never share a tag: the tag
// is the text between the first '{' and the next '}', which enc cannot
// contain.
type Keys struct {
	Holders  string // sorted set: holder member -> server-time expiry (ms)
	Queue    string // sorted set: waiter member -> arrival number
	QueueExp string // sorted set: waiter member -> server-time expiry (ms)
	Tokens   string // hash: holder member -> fencing token
	Seq      string // counter: fencing tokens and arrival numbers
	Limit    string // semaphore limit, while anyone holds or waits
	Values   string // hash: member -> election value
	History  string // capped stream of an election's changes
	Channel  string // pub/sub channel of wake-ups and changes

	history bool // the name is an election: record changes in History
}

// encoder escapes the characters that could end or nest the hash tag.
var encoder = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// KeysFor returns the keys of name.
func KeysFor(name string) Keys {
	base := keyPrefix + "{" + encoder.Replace(name) + "}:"
	return Keys{
		Holders:  base + "h",
		Queue:    base + "q",
		QueueExp: base + "qx",
		Tokens:   base + "tok",
		Seq:      base + "seq",
		Limit:    base + "limit",
		Values:   base + "val",
		History:  base + "hist",
		Channel:  base + "ch",
	}
}

// list returns the keys in the order the script expects them.
func (k Keys) list() []string {
	return []string{k.Holders, k.Queue, k.QueueExp, k.Tokens, k.Seq, k.Limit, k.Values, k.History}
}
