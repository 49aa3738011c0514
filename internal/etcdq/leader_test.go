package etcdq

import (
	"context"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// TestWithRequireLeader: an epoch's context carries the require-leader
// metadata to the contexts derived from it, merged with outgoing metadata
// of its own, and its cancellation reaches them.
func TestWithRequireLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
	}{
		{"plain", nil},
		{"own metadata", metadata.Pairs("k", "v")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			if tc.md != nil {
				parent = metadata.NewOutgoingContext(parent, tc.md)
			}
			derived, stop := context.WithCancel(withRequireLeader(parent))
			defer stop()
			md, _ := metadata.FromOutgoingContext(derived)
			if got := md.Get(rpctypes.MetadataRequireLeaderKey); len(got) != 1 || got[0] != rpctypes.MetadataHasLeader {
				t.Errorf("%s = %q, want %q", rpctypes.MetadataRequireLeaderKey, got, rpctypes.MetadataHasLeader)
			}
			if tc.md != nil {
				if got := md.Get("k"); len(got) != 1 || got[0] != "v" {
					t.Errorf("own metadata k = %q, want v", got)
				}
			}
			cancel()
			<-derived.Done()
		})
	}
}
