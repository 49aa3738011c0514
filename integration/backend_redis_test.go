package integration

// redisBackend adapts the redis Session to the conformance suite.
//
// TODO(issue 13): build it on the new Session.
func redisBackend() backend {
	return backend{name: "redis"}
}
