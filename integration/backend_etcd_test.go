package integration

// etcdBackend adapts the etcd Session to the conformance suite.
//
// TODO(issue 13): build it on the new Session.
func etcdBackend() backend {
	return backend{name: "etcd"}
}
