package integration

// zkBackend adapts the zookeeper Session to the conformance suite.
//
// TODO(issue 13): build it on the new Session.
func zkBackend() backend {
	return backend{name: "zookeeper"}
}
