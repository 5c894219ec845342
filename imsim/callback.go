package imsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// CommandFriendDelete is the "After a Friend Is Deleted" callback command.
const CommandFriendDelete = "Sns.CallbackFriendDelete"

// Callback is one IM callback request: its query parameters and body. The
// zero value is not useful; AppID and ClientIP are needed for a callback a
// receiver accepts.
type Callback struct {
	// AppID is the SdkAppid parameter.
	AppID string
	// Command is the CallbackCommand parameter; empty means
	// [CommandFriendDelete].
	Command string
	// ClientIP is the ClientIP parameter; empty leaves it out, as IM does
	// for the commands that carry none.
	ClientIP string
	// OptPlatform is the OptPlatform parameter; empty leaves it out.
	OptPlatform string
	// Token, when not empty, adds Sign and RequestTime (IM's token
	// authentication). It is never sent itself.
	Token []byte
	// RequestTime is the time signed with Token; zero means now.
	RequestTime time.Time
	// Body is the JSON body.
	Body []byte
}

func (c Callback) command() string {
	if c.Command == "" {
		return CommandFriendDelete
	}
	return c.Command
}

// Query returns the URL query IM would send for c, parameters in IM's
// order: SdkAppid, CallbackCommand, contenttype, ClientIP, OptPlatform, then
// Sign and RequestTime when a token is set.
func (c Callback) Query() string {
	return string(c.appendQuery(nil, c.RequestTime))
}

// appendQuery appends c's query to b, signing for rt (zero means now).
func (c Callback) appendQuery(b []byte, rt time.Time) []byte {
	b = append(b, "SdkAppid="...)
	b = append(b, url.QueryEscape(c.AppID)...)
	b = append(b, "&CallbackCommand="...)
	b = append(b, url.QueryEscape(c.command())...)
	b = append(b, "&contenttype=json"...)
	if c.ClientIP != "" { // Push.*, ContentCallback.* and Alert.* carry none
		b = append(b, "&ClientIP="...)
		b = append(b, url.QueryEscape(c.ClientIP)...)
	}
	if c.OptPlatform != "" {
		b = append(b, "&OptPlatform="...)
		b = append(b, url.QueryEscape(c.OptPlatform)...)
	}
	if len(c.Token) > 0 {
		if rt.IsZero() {
			rt = time.Now()
		}
		b = appendSign(b, c.Token, rt.Unix())
	}
	return b
}

// appendSign appends "&Sign=...&RequestTime=..." for token at unix time t.
func appendSign(b, token []byte, t int64) []byte {
	b = append(b, "&Sign="...)
	b = append(b, Sign(token, t)...)
	b = append(b, "&RequestTime="...)
	return strconv.AppendInt(b, t, 10)
}

// Sign returns IM's callback signature for a token and a RequestTime in
// Unix seconds: the lowercase hex SHA-256 of the token followed by the
// decimal RequestTime.
func Sign(token []byte, requestTime int64) string {
	buf := make([]byte, 0, len(token)+20)
	buf = append(buf, token...)
	buf = strconv.AppendInt(buf, requestTime, 10)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// Pair is one deleted friendship of a FriendDelete body.
type Pair struct {
	From, To string
}

// FriendDeleteBody returns the JSON body of a Sns.CallbackFriendDelete
// callback carrying pairs, in IM's field order.
func FriendDeleteBody(pairs ...Pair) []byte {
	type jsonPair struct {
		From string `json:"From_Account"`
		To   string `json:"To_Account"`
	}
	list := make([]jsonPair, len(pairs))
	for i, p := range pairs {
		list[i] = jsonPair(p)
	}
	b, _ := json.Marshal(struct { // cannot fail: strings only
		Command  string     `json:"CallbackCommand"`
		PairList []jsonPair `json:"PairList"`
	}{CommandFriendDelete, list})
	return b
}

// maxClientIPs is the number of distinct addresses ClientIPFor can make.
const maxClientIPs = 1<<24 - 2

// ClientIPFor returns the i-th of n distinct ClientIPs (i taken modulo n):
// addresses in 10.0.0.0/8, starting at 10.0.0.1. n must be at most
// 16 777 214; n <= 1 always gives 10.0.0.1.
func ClientIPFor(i, n int64) string {
	if n <= 1 {
		i = 0
	} else {
		i %= n
	}
	v := uint32(i + 1)
	return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}).String()
}
