// Package distsynctest is distsync's test kit, for the tests of code that
// uses distsync.
package distsynctest
