//go:build !race

package zksync_test

// raceEnabled tells whether the race detector is on.
const raceEnabled = false
