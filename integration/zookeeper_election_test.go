package integration

import (
	"testing"

	"github.com/distsync/distsync/fallback/zksync"
)

func zkElection(t *testing.T, s *zksync.Session, name string) *zksync.Election {
	t.Helper()
	e, err := s.Election(name)
	if err != nil {
		t.Fatal(err)
	}
	return e.(*zksync.Election)
}
