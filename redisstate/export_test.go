package redisstate

import (
	"context"
	"log/slog"
)

// LibraryLogPrintf logs as go-redis would through RouteLibraryLog's adapter.
func LibraryLogPrintf(l *slog.Logger, format string, v ...any) {
	libLog{l}.Printf(context.Background(), format, v...)
}
