package audit

// Counts returns how many records of each reason were passed to Log since
// New, counted before sampling: a record suppressed by sampling is counted
// too, so the numbers are the true rate of refusals (for metrics) while the
// log itself stays bounded. Reasons never logged are absent. The map is a
// fresh copy the caller may keep. Safe for concurrent use; a nil *Logger
// returns an empty map.
func (l *Logger) Counts() map[Reason]uint64 {
	out := make(map[Reason]uint64)
	if l == nil {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for r, n := range l.byReason {
		out[r] = n
	}
	return out
}

// countLocked records one record of reason r; l.mu must be held.
func (l *Logger) countLocked(r Reason) {
	if l.byReason == nil {
		l.byReason = make(map[Reason]uint64)
	}
	l.byReason[r]++
}
