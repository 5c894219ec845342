package egress

import "time"

// Status is a snapshot of a Source, for /status and metrics. Times are
// zero until the event they name has happened.
type Status struct {
	Region              string       `json:"region,omitempty"`     // Options.Region; empty with a BaseURL
	Host                string       `json:"host"`                 // REST host called
	NetTypes            []NetType    `json:"nettypes"`             // lists taken, merged
	Ready               bool         `json:"ready"`                // a list is held (Entries > 0)
	Entries             int          `json:"entries"`              // networks in the enforced list
	UpdatedAt           time.Time    `json:"updated_at"`           // last refresh that succeeded for every list
	AgeSeconds          float64      `json:"age_seconds"`          // since UpdatedAt; 0 while none
	Stale               bool         `json:"stale"`                // a list is held and older than StaleAfterSeconds
	IntervalSeconds     float64      `json:"interval_seconds"`     // between fetches after a success
	StaleAfterSeconds   float64      `json:"stale_after_seconds"`  // Options.StaleAfter intervals; older is stale
	LastAttempt         time.Time    `json:"last_attempt"`         // start of the last refresh
	LastResult          Result       `json:"last_result"`          // "ok", "empty", "error"; "" before the first
	LastError           string       `json:"last_error,omitempty"` // the last refresh's errors, when it failed
	NextAttempt         time.Time    `json:"next_attempt"`         // when Run fetches next
	ConsecutiveFailures int          `json:"consecutive_failures"` // failed or empty refreshes in a row (Run)
	Refreshes           uint64       `json:"refreshes"`            // refreshes since New
	Failures            uint64       `json:"failures"`             // refreshes with a failed fetch
	EmptyAnswers        uint64       `json:"empty_answers"`        // refreshes whose answers held no usable entry
	Changes             uint64       `json:"changes"`              // times the enforced list changed (the first load included)
	Skipped             int          `json:"skipped"`              // entries skipped as malformed in the last refresh
	Lists               []ListStatus `json:"lists"`                // per nettype
}

// ListStatus describes one nettype's list within a Status.
type ListStatus struct {
	NetType    NetType   `json:"nettype"`
	Entries    int       `json:"entries"`              // networks held for this nettype
	UpdatedAt  time.Time `json:"updated_at"`           // last successful, non-empty fetch
	LastResult Result    `json:"last_result"`          // of the last fetch
	LastError  string    `json:"last_error,omitempty"` // of the last fetch, when it failed
	Skipped    int       `json:"skipped"`              // entries skipped in the last answer
}
