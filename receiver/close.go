package receiver

import "net/http"

// closeAfter asks an HTTP/1 server to close the connection once the
// answer is written: the rest of a body refused unread is still on the
// connection, and reading it to keep the connection is not worth it. The
// server (with edge's lingering close) then reads and drops what the client
// still sends, bounded, so that the answer is not lost to a reset.
//
// Over HTTP/2 it does nothing: the server ends the refused stream alone
// (RST_STREAM NO_ERROR after the answer), while a Connection: close would
// make net/http send GOAWAY and tear down the whole connection as soon as
// it is idle, with the client possibly still sending, which loses the
// answer's body (curl: "Transferred a partial file").
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = []string{"close"}
	}
}
