package audit_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
)

// Field limits of the encoder, in bytes of the input kept before "…".
const (
	shortField = 64  // client_ip, sdkappid, command, im_request_id
	longField  = 256 // every other string field
)

// knownFields are the only keys an audit line may carry.
var knownFields = map[string]bool{
	"time": true, "level": true, "msg": true, "reason": true, "status": true, "detail": true,
	"remote_addr": true, "client_ip": true, "sdkappid": true, "command": true, "request_id": true,
	"im_request_id": true, "cert_subject": true, "cert_serial": true, "cert_sha256": true,
	"body_sha256": true, "body_size": true, "tls_version": true,
}

// FuzzAuditRecord checks the audit record encoder: whatever a Record holds
// (attacker strings with newlines, quotes, invalid UTF-8, any length), Log
// writes exactly one line of valid JSON, with only the documented fields,
// every string field clipped, short valid values kept exactly, and empty
// values left out.
func FuzzAuditRecord(f *testing.F) {
	f.Add("bad_sign", "Sign does not match", "203.0.113.7:50122", "36.112.173.178", "1400000000",
		"Sns.CallbackFriendDelete", "5f1c9a0e-17", "2d1c5e4e", "CN=im-callback", "3a9f", strings.Repeat("9b", 32),
		strings.Repeat("e3", 32), 401, int64(128), "TLS 1.3")
	f.Add("tls_no_cert", "", "[::1]:1", "", "", "", "", "", "", "", "", "", 0, int64(-1), "TLS 1.2")
	f.Add("bad_clientip", "x\ny", "a:1", strings.Repeat("x", 5000), "1\"}\n{\"reason\":\"forged", "\xff\xfe\x00",
		"", "\u2028\u2029", strings.Repeat("CN=é,", 200), "", "", "", 400, int64(0), "")
	f.Add("", "\x00\x01\x1b[31m", "", "\xed\xa0\x80", strings.Repeat("é", 40), "", "\r\n", "", "", "", "", "x", -7, int64(1<<62), "")
	f.Fuzz(func(t *testing.T, reason, detail, remote, clientIP, sdkappid, command, reqID, imReqID,
		subject, serial, certSHA, bodySHA string, status int, bodySize int64, tlsVersion string) {
		var buf bytes.Buffer
		l := audit.New(&buf, audit.Options{})
		l.Log(audit.Record{
			Reason: audit.Reason(reason), Status: status, Detail: detail, RemoteAddr: remote, ClientIP: clientIP,
			SdkAppid: sdkappid, Command: command, RequestID: reqID, IMRequestID: imReqID,
			CertSubject: subject, CertSerial: serial, CertSHA256: certSHA, BodySHA256: bodySHA,
			BodySize: bodySize, TLSVersion: tlsVersion,
		})
		out := buf.Bytes()
		require.True(t, bytes.HasSuffix(out, []byte("\n")), "ends with a newline")
		require.Equal(t, 1, bytes.Count(out, []byte("\n")), "exactly one line: %q", out)
		require.True(t, json.Valid(out), "valid JSON: %q", out)
		var m map[string]any
		require.NoError(t, json.Unmarshal(out, &m))
		for k := range m {
			assert.True(t, knownFields[k], "unexpected field %q", k)
		}
		assert.Equal(t, "audit", m["msg"])
		assert.Equal(t, "WARN", m["level"])

		check := func(key, in string, limit int) {
			v, present := m[key]
			if in == "" {
				assert.False(t, present, "%s: empty values are left out", key)
				return
			}
			if key != "reason" && !present {
				t.Errorf("%s missing", key)
				return
			}
			s, ok := v.(string)
			require.True(t, ok, "%s is a string", key)
			// Invalid bytes come out as U+FFFD (3 bytes each), plus "…".
			assert.LessOrEqual(t, len(s), 3*limit+len("…"), "%s clipped", key)
			if len(in) <= limit && utf8.ValidString(in) {
				assert.Equal(t, in, s, "%s: a short valid value is kept exactly", key)
			}
			if len(in) > limit {
				assert.True(t, strings.HasSuffix(s, "…"), "%s: a clipped value ends with an ellipsis", key)
			}
		}
		_, hasReason := m["reason"]
		assert.True(t, hasReason, "reason is always written")
		check("detail", detail, longField)
		check("remote_addr", remote, longField)
		check("client_ip", clientIP, shortField)
		check("sdkappid", sdkappid, shortField)
		check("command", command, shortField)
		check("request_id", reqID, longField)
		check("im_request_id", imReqID, shortField)
		check("cert_subject", subject, longField)
		check("cert_serial", serial, longField)
		check("cert_sha256", certSHA, longField)
		check("body_sha256", bodySHA, longField)
		check("tls_version", tlsVersion, longField)
		if status == 0 {
			assert.NotContains(t, m, "status")
		} else {
			assert.Equal(t, float64(status), m["status"])
		}
		_, hasSize := m["body_size"]
		assert.Equal(t, bodySHA != "" || bodySize > 0, hasSize, "body_size only with a body")
	})
}
