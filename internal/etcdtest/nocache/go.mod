// This empty module stands in for go.etcd.io/etcd/cache/v3, which etcd's
// tests module (used for etcdcluster) requires at a version the module
// proxy does not serve. No package of it is imported: replacing it lets
// `go list -m all` and `go mod tidy` resolve the module graph.
module go.etcd.io/etcd/cache/v3

go 1.26.0
