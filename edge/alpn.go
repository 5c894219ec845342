package edge

import (
	"crypto/tls"
	"slices"
)

// WithoutHTTP2 returns a copy of the server configuration cfg whose
// handshakes never negotiate "h2", for an http.Server that serves HTTP/1
// only (a client offering only h2 then fails ALPN). It works with configs
// that choose a per-client configuration in GetConfigForClient: the chosen
// configuration is cloned and its NextProtos filtered. Use the returned
// config instead of cfg, one per listener, so session tickets keep working.
func WithoutHTTP2(cfg *tls.Config) *tls.Config {
	out := cfg.Clone()
	out.NextProtos = withoutH2(cfg.NextProtos)
	if get := cfg.GetConfigForClient; get != nil {
		out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if err != nil || c == nil || !slices.Contains(c.NextProtos, "h2") {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = withoutH2(c.NextProtos)
			return c, nil
		}
	}
	return out
}

func withoutH2(protos []string) []string {
	if !slices.Contains(protos, "h2") {
		return protos
	}
	return slices.DeleteFunc(slices.Clone(protos), func(p string) bool { return p == "h2" })
}
