// Package egress fetches the list of addresses Tencent Cloud IM sends its
// callbacks from, and keeps it current.
//
// IM publishes its callback egress addresses through its REST API
// (v4/ConfigSvc/GetIPList; nettype 5 for the Chinese mainland and Hong
// Kong, 6 for elsewhere). A [Source] calls that API with an app admin's
// [UserSig] at start and every [Options.Interval], keeps the last good
// list when a fetch fails or comes back empty, and publishes each new list
// with one atomic store, so that [Source.Contains] — the edge listener's
// check of every new connection — takes no lock and allocates nothing.
// [Source.Status] reports the list's size and age, the last fetch's result
// and whether the list is stale, for /status and metrics.
//
// The package owns the REST call, the UserSig (version 2) it needs, the
// parsing and bounding of IM's answer, and the refresh schedule. It does not
// own enforcement: the edge listener asks a [Source] (through edge's own
// SourceSet interface, which it satisfies) and closes refused connections
// itself. It does not read the secret key from disk or the environment
// either; the caller passes the key's bytes in [Options.SecretKey]. Neither
// the key nor a UserSig ever appears in a log line, an error or a Status.
package egress
