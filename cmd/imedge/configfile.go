package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imedge/imedge/certs"
)

// The configuration file is YAML whose keys are the flag names of
// `imedge serve` (without dashes in front), so every setting has exactly one
// key and one flag and the two can never drift apart:
//
//	listen: ":443"
//	client-crl: [/etc/imedge/im.crl]
//	rate: 20
//
// Flags given on the command line override the file; a repeatable flag given
// on the command line replaces the file's list. Unknown keys, wrong types and
// bad values are errors naming the key and its line.

// configFlag is the flag that names the configuration file.
const configFlag = "config"

// configArg returns the value of --config/-config in args, if any, without
// parsing the rest.
func configArg(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != configFlag {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// applyConfigFile sets the flags of fs from the YAML file at path.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := certs.ReadFile("reading config", path)
	if err != nil {
		return err
	}
	return applyConfigYAML(fs, path, data)
}

func applyConfigYAML(fs *flag.FlagSet, name string, data []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s: line %d: want a mapping of settings (key: value)", name, root.Line)
	}
	var errs []error
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("config %s: line %d: key %q: %s", name, k.Line, k.Value, fmt.Sprintf(format, a...)))
		}
		f := fs.Lookup(k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("config %s: line %d: keys must be plain names", name, k.Line))
			continue
		case k.Value == configFlag || k.Value == "dev" || k.Value == "dev-dir":
			bad("not allowed in a config file")
			continue
		case f == nil:
			if msg, ok := removedSetting(k.Value); ok {
				bad("%s", msg)
			} else {
				bad("unknown key%s", suggestion(fs, k.Value))
			}
			continue
		case seen[k.Value]:
			bad("given twice")
			continue
		}
		seen[k.Value] = true
		lf, isList := f.Value.(repeatable)
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				bad("no value")
				continue
			}
			if err := fs.Set(k.Value, v.Value); err != nil {
				bad("%v", err)
			}
		case yaml.SequenceNode:
			if !isList {
				bad("takes a single value, not a list")
				continue
			}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					bad("list items must be plain values")
					continue
				}
				if err := fs.Set(k.Value, item.Value); err != nil {
					bad("%v", err)
				}
			}
		default:
			bad("want a value or a list")
			continue
		}
		if isList {
			// A repeatable flag on the command line replaces the file's list.
			f.Value = &replaceOnSet{inner: lf}
		}
	}
	return errors.Join(errs...)
}

// replaceOnSet clears a list flag set from the config file the first time
// the command line sets it.
type replaceOnSet struct {
	inner   repeatable
	cleared bool
}

func (r *replaceOnSet) String() string { return r.inner.String() }

func (r *replaceOnSet) Set(v string) error {
	if !r.cleared {
		r.inner.reset()
		r.cleared = true
	}
	return r.inner.Set(v)
}

func (r *replaceOnSet) reset() { r.inner.reset() }

// suggestion proposes a known key close to a mistyped one.
func suggestion(fs *flag.FlagSet, key string) string {
	norm := func(s string) string { return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s)) }
	if f := fs.Lookup(norm(key)); f != nil {
		return fmt.Sprintf(" (did you mean %q?)", f.Name)
	}
	return ""
}

// effectiveConfig renders every setting of fs as a YAML config file, in
// name order, with the usage as a comment. A setting with an empty value is
// written commented out, so the file leaves it unset. The state directory
// is the resolved one (c.State.Dir, naming where it came from) when c has
// one. Secret values never appear: the only secrets are read from the
// files or environment variables that token-file and the other *-file
// settings name.
func effectiveConfig(fs *flag.FlagSet, c Config) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag && f.Name != "dev" && f.Name != "dev-dir" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		f := fs.Lookup(n)
		fmt.Fprintf(&b, "# %s\n", f.Usage)
		val := f.Value.String()
		if n == "state-dir" && c.State.Dir != "" {
			val = c.State.Dir
			fmt.Fprintf(&b, "# (resolved from: %s)\n", c.State.dirSource)
		}
		if _, isList := f.Value.(repeatable); isList {
			if val == "" {
				fmt.Fprintf(&b, "%s: []\n", n)
			} else {
				fmt.Fprintf(&b, "%s: [%s]\n", n, yamlList(strings.Split(val, ",")))
			}
			continue
		}
		if val == "" {
			fmt.Fprintf(&b, "# %s:\n", n)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", n, yamlScalar(val))
	}
	fmt.Fprintf(&b, "# IM token: %s; forward signing secret: %s (values never printed)\n",
		secretState(c.IM.Token, c.IM.TokenSource), secretState(c.Delivery.Secret, "set"))
	return b.String()
}

func secretState(v []byte, source string) string {
	if len(v) == 0 {
		return "not set"
	}
	return source
}

// plainScalar matches values that YAML reads back as the same plain text.
var plainScalar = regexp.MustCompile(`^[A-Za-z0-9._/@+-]+$`)

func yamlScalar(s string) string {
	if plainScalar.MatchString(s) && s != "null" {
		return s
	}
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSpace(string(out))
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = yamlScalar(it)
	}
	return strings.Join(q, ", ")
}
