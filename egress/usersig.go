package egress

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxUserSigLen bounds a UserSig ParseUserSig accepts, before and after
// inflating: a real one is about 200 characters.
const maxUserSigLen = 4096

// userSigVersion is the TLS.ver of the UserSig algorithm implemented here.
const userSigVersion = "2.0"

// UserSigInfo holds the fields of a decoded UserSig (version 2). The zero
// value is no UserSig.
type UserSigInfo struct {
	Version    string // TLS.ver, "2.0"
	Identifier string // TLS.identifier, the account the UserSig is for
	AppID      uint64 // TLS.sdkappid
	Time       int64  // TLS.time, issue time in Unix seconds
	Expire     int64  // TLS.expire, lifetime in seconds
	Sig        string // TLS.sig, standard base64 of the HMAC-SHA256
}

// userSigDoc is the JSON document a UserSig compresses. The field order is
// the one Tencent's reference libraries write; readers do not depend on it.
type userSigDoc struct {
	Version    string `json:"TLS.ver"`
	Identifier string `json:"TLS.identifier"`
	AppID      uint64 `json:"TLS.sdkappid"`
	Expire     int64  `json:"TLS.expire"`
	Time       int64  `json:"TLS.time"`
	Sig        string `json:"TLS.sig"`
}

// userSigContent is the text the HMAC covers.
func userSigContent(identifier string, appID uint64, issued, expire int64) string {
	return "TLS.identifier:" + identifier + "\n" +
		"TLS.sdkappid:" + strconv.FormatUint(appID, 10) + "\n" +
		"TLS.time:" + strconv.FormatInt(issued, 10) + "\n" +
		"TLS.expire:" + strconv.FormatInt(expire, 10) + "\n"
}

// userSigMAC is the standard base64 of HMAC-SHA256 over the content, keyed
// with the secret key's bytes.
func userSigMAC(key []byte, identifier string, appID uint64, issued, expire int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(userSigContent(identifier, appID, issued, expire)))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// toUserSigAlphabet maps standard base64 to the URL-safe variant IM uses:
// '+' → '*', '/' → '-', '=' → '_'.
func toUserSigAlphabet(r rune) rune {
	switch r {
	case '+':
		return '*'
	case '/':
		return '-'
	case '=':
		return '_'
	}
	return r
}

// fromUserSigAlphabet reverses toUserSigAlphabet.
func fromUserSigAlphabet(r rune) rune {
	switch r {
	case '*':
		return '+'
	case '-':
		return '/'
	case '_':
		return '='
	}
	return r
}

// UserSig returns a version-2 UserSig for identifier in app appID, signed
// with the app's secret key, issued at issued and valid for lifetime
// (whole seconds). It is a bearer credential for IM's REST API: never log
// it. Safe for concurrent use.
func UserSig(key []byte, appID uint64, identifier string, issued time.Time, lifetime time.Duration) string {
	now, expire := issued.Unix(), int64(lifetime/time.Second)
	doc := userSigDoc{
		Version:    userSigVersion,
		Identifier: identifier,
		AppID:      appID,
		Expire:     expire,
		Time:       now,
		Sig:        userSigMAC(key, identifier, appID, now, expire),
	}
	js, _ := json.Marshal(doc) // a struct of strings and integers always marshals
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, _ = zw.Write(js) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	return strings.Map(toUserSigAlphabet, base64.StdEncoding.EncodeToString(buf.Bytes()))
}

// ParseUserSig decodes a UserSig without checking its signature: it
// reverses the URL-safe base64, inflates and reads the JSON fields. Errors
// wrap ErrBadUserSig.
func ParseUserSig(s string) (UserSigInfo, error) {
	if len(s) > maxUserSigLen {
		return UserSigInfo{}, fmt.Errorf("decoding UserSig: %w: longer than %d characters", ErrBadUserSig, maxUserSigLen)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Map(fromUserSigAlphabet, s))
	if err != nil {
		return UserSigInfo{}, fmt.Errorf("decoding UserSig base64: %w: %w", ErrBadUserSig, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return UserSigInfo{}, fmt.Errorf("inflating UserSig: %w: %w", ErrBadUserSig, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxUserSigLen+1))
	if err != nil {
		return UserSigInfo{}, fmt.Errorf("inflating UserSig: %w: %w", ErrBadUserSig, err)
	}
	if len(js) > maxUserSigLen {
		return UserSigInfo{}, fmt.Errorf("inflating UserSig: %w: document longer than %d bytes", ErrBadUserSig, maxUserSigLen)
	}
	var doc userSigDoc
	if err := json.Unmarshal(js, &doc); err != nil {
		return UserSigInfo{}, fmt.Errorf("reading UserSig document: %w: %w", ErrBadUserSig, err)
	}
	return UserSigInfo{
		Version: doc.Version, Identifier: doc.Identifier, AppID: doc.AppID,
		Time: doc.Time, Expire: doc.Expire, Sig: doc.Sig,
	}, nil
}

// VerifyUserSig decodes s, recomputes its signature with key and checks
// that it is a version-2 UserSig still valid at now. It is the check IM's
// REST API makes, used by tests' fake IM server. Errors wrap ErrBadUserSig.
func VerifyUserSig(s string, key []byte, now time.Time) (UserSigInfo, error) {
	info, err := ParseUserSig(s)
	if err != nil {
		return UserSigInfo{}, err
	}
	if info.Version != userSigVersion {
		return info, fmt.Errorf("checking UserSig: %w: version %q, want %q", ErrBadUserSig, info.Version, userSigVersion)
	}
	got, err := base64.StdEncoding.DecodeString(info.Sig)
	if err != nil {
		return info, fmt.Errorf("checking UserSig: %w: TLS.sig is not base64", ErrBadUserSig)
	}
	want, _ := base64.StdEncoding.DecodeString(userSigMAC(key, info.Identifier, info.AppID, info.Time, info.Expire))
	if !hmac.Equal(got, want) {
		return info, fmt.Errorf("checking UserSig: %w: signature does not match", ErrBadUserSig)
	}
	if now.Unix() > info.Time+info.Expire {
		return info, fmt.Errorf("checking UserSig: %w: expired at %s", ErrBadUserSig,
			time.Unix(info.Time+info.Expire, 0).UTC().Format(time.RFC3339))
	}
	return info, nil
}
