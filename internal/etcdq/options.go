package etcdq

import "time"

// Options are the settings of a primitive's own session (the NewWithClient
// constructors). Every etcd primitive shares them.
type Options struct {
	TTL time.Duration
}

// An Option changes Options.
type Option func(*Options)

// Apply returns the options with defaults, after opts.
func Apply(opts []Option) Options {
	o := Options{TTL: DefaultTTL}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
