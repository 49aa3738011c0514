package testserver

import (
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logEnv names the environment variable that turns server and client logs
// on. They are off by default because etcd logs every election, connection
// and retry at info level, which buries a failing test's own output.
const logEnv = "DISTSYNC_TEST_LOG"

// logLevel reports the level DISTSYNC_TEST_LOG asks for, and whether it asks
// for any logging at all.
func logLevel() (zapcore.Level, bool) {
	v := os.Getenv(logEnv)
	if v == "" {
		return 0, false
	}
	lvl, err := zapcore.ParseLevel(v)
	if err != nil {
		// A typo should not silence the logs the user just asked for.
		return zapcore.DebugLevel, true
	}
	return lvl, true
}

// stderrLogger returns the logger for servers and clients that outlive any one
// test (the shared embedded etcd): stderr, not a testing.TB, because logging
// to a finished test panics.
func stderrLogger() *zap.Logger {
	lvl, ok := logLevel()
	if !ok {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}
