package egress

import (
	"fmt"
	"slices"
	"strings"
)

// region is one of IM's data-centre regions and its REST API host.
type region struct{ name, host string }

// regions is the table of im-webhooks.md's appendix: an app calls the REST
// host of the region it was created in. "tokyo" comes from the REST domain
// list of §4.4 and "india" from a single Chinese page; the others are on
// every list.
func regions() []region {
	return []region{
		{"china", "console.tim.qq.com"},
		{"singapore", "adminapisgp.im.qcloud.com"},
		{"seoul", "adminapikr.im.qcloud.com"},
		{"tokyo", "adminapijpn.im.qcloud.com"},
		{"frankfurt", "adminapiger.im.qcloud.com"},
		{"silicon-valley", "adminapiusa.im.qcloud.com"},
		{"jakarta", "adminapiidn.im.qcloud.com"},
		{"india", "adminapiind.im.qcloud.com"},
	}
}

// Regions returns the region names Options.Region accepts, in table order
// (China first).
func Regions() []string {
	var out []string
	for _, r := range regions() {
		out = append(out, r.name)
	}
	return out
}

// RegionHost returns the REST API host of the named region. Names are
// matched without regard to case. An unknown name wraps ErrUnknownRegion
// and lists the known ones.
func RegionHost(name string) (string, error) {
	i := slices.IndexFunc(regions(), func(r region) bool { return strings.EqualFold(r.name, name) })
	if i < 0 {
		return "", fmt.Errorf("looking up region %q: %w (known: %s)", name, ErrUnknownRegion, strings.Join(Regions(), ", "))
	}
	return regions()[i].host, nil
}
