package redisstate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RouteLibraryLog sends go-redis's own log lines (connection errors while
// Redis is down, pool warnings), which it otherwise prints as plain text
// to stderr, to logger as Warn records with the message in "msg" and
// component "go-redis", so the operational log stays JSON. go-redis keeps
// one logger per process: call this once, from the program's main path
// (imedge serve does), not from a library.
func RouteLibraryLog(logger *slog.Logger) {
	redis.SetLogger(libLog{logger})
}

// libLog adapts a slog.Logger to go-redis's logging interface.
type libLog struct{ l *slog.Logger }

func (g libLog) Printf(ctx context.Context, format string, v ...any) {
	g.l.LogAttrs(ctx, slog.LevelWarn, strings.TrimSpace(fmt.Sprintf(format, v...)), slog.String("component", "go-redis"))
}
