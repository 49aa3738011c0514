package telemetry

import (
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }
