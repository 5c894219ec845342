package main

import (
	"strconv"
	"time"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/receiver"
)

// imConfig is the IM app imedge serves and the bounds of its callbacks
// (package receiver).
type imConfig struct {
	SdkAppid        string        // --sdkappid
	TokenFile       string        // --token-file
	Token           []byte        // from TokenFile or IMEDGE_TOKEN, never a flag value
	TokenSource     string        // where Token came from, for logs (never the value)
	SignWindow      time.Duration // --sign-window
	MaxBody         int64         // --max-body
	MaxAccountBytes int           // --max-account-bytes
	Commands        []string      // --commands: patterns of the commands served; none: the catalog's defaults
	UnknownCommands string        // --unknown-commands: forward or refuse
	Validation      string        // --validation: strict or warn
}

func (m *imConfig) register(fs *flagSet) {
	fs.group(groupRequired, func() {
		fs.StringVar(&m.SdkAppid, "sdkappid", "", "the IM SDKAppID callbacks must carry")
	})
	fs.group(groupTLS, func() {
		fs.Var(pathFlag{&m.TokenFile}, "token-file", "file holding the IM callback token (or set IMEDGE_TOKEN)")
		fs.DurationVar(&m.SignWindow, "sign-window", receiver.DefaultSignWindow, "largest allowed |now - RequestTime| for a signed callback")
	})
	fs.group(groupRouting, func() {
		fs.Var(listFlag{&m.Commands}, "commands", "serve only these commands: a CallbackCommand, a family such as Group.*, or * (repeatable; default: every command of the catalog, see imedge commands); others are refused unsupported_command")
		fs.StringVar(&m.UnknownCommands, "unknown-commands", string(receiver.UnknownForward), "an authenticated command that is not in the catalog: forward (after generic checks, with a warning) or refuse")
		fs.StringVar(&m.Validation, "validation", string(receiver.ValidateStrict), "a body that breaks its command's catalog entry: strict (refused 400) or warn (forwarded, counted and logged)")
	})
	m.MaxBody = receiver.DefaultMaxBody
	fs.group(groupLimits, func() {
		fs.Var(sizeFlag{&m.MaxBody}, "max-body", "largest callback body (bytes, or with KiB/MiB)")
		fs.IntVar(&m.MaxAccountBytes, "max-account-bytes", receiver.DefaultMaxAccountBytes, "largest account id (a *_Account value) in bytes")
	})
}

func (m imConfig) validate(Config) []error {
	var p problems
	if m.SdkAppid == "" {
		p.add("--sdkappid is required")
	} else if _, err := strconv.ParseUint(m.SdkAppid, 10, 64); err != nil {
		p.add("--sdkappid %q: want the decimal SDKAppID", m.SdkAppid)
	}
	p.positive("sign-window", m.SignWindow)
	if m.MaxAccountBytes <= 0 || m.MaxAccountBytes > 1024 {
		p.add("--max-account-bytes must be 1..1024")
	}
	if m.MaxBody <= 0 || m.MaxBody > 64<<20 {
		p.add("--max-body must be 1 byte..64MiB")
	}
	for _, pat := range m.Commands {
		if err := catalog.CheckPattern(pat); err != nil {
			p.add("--commands %q: %w", pat, err)
		}
	}
	if m.UnknownCommands != string(receiver.UnknownForward) && m.UnknownCommands != string(receiver.UnknownRefuse) {
		p.add("--unknown-commands %q: want forward or refuse", m.UnknownCommands)
	}
	if m.Validation != string(receiver.ValidateStrict) && m.Validation != string(receiver.ValidateWarn) {
		p.add("--validation %q: want strict or warn", m.Validation)
	}
	return p
}

// tokenState says whether token authentication is on, and from where.
func (m imConfig) tokenState() string {
	if len(m.Token) == 0 {
		return "off"
	}
	return "on (" + m.TokenSource + ")"
}
