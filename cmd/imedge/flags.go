package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// flagSet is a flag.FlagSet that also knows, for --help, which group each
// flag belongs to and which flags are required. Parse errors are returned,
// never printed: the caller turns an unknown flag into one line with a
// suggestion.
type flagSet struct {
	*flag.FlagSet
	groups   []flagGroup
	grouped  map[string]bool
	required map[string]bool
}

// flagGroup is one section of --help.
type flagGroup struct {
	title string
	names []string
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, grouped: map[string]bool{}, required: map[string]bool{}}
}

// group runs register and files the flags it defined under title, in
// definition order. A title used twice continues its section.
func (f *flagSet) group(title string, register func()) {
	register()
	i := slices.IndexFunc(f.groups, func(g flagGroup) bool { return g.title == title })
	if i < 0 {
		f.groups = append(f.groups, flagGroup{title: title})
		i = len(f.groups) - 1
	}
	var added []string
	f.VisitAll(func(fl *flag.Flag) {
		if !f.grouped[fl.Name] {
			added = append(added, fl.Name)
		}
	})
	// VisitAll sorts by name; keep that order within a registration.
	for _, n := range added {
		f.grouped[n] = true
		f.groups[i].names = append(f.groups[i].names, n)
	}
}

// require marks flags as required for --help (Validate enforces them).
func (f *flagSet) require(names ...string) {
	for _, n := range names {
		f.required[n] = true
	}
}

// optional drops the required marks and retitles the section named
// required as title: for a command that reads serve's flags without
// needing all of them.
func (f *flagSet) optional(required, title string) {
	clear(f.required)
	for i := range f.groups {
		if f.groups[i].title == required {
			f.groups[i].title = title
		}
	}
}

// printHelp writes the usage: synopsis, then each group's flags with their
// defaults, required ones marked, then examples.
func (f *flagSet) printHelp(w io.Writer, synopsis, examples string) {
	fmt.Fprint(w, synopsis)
	for _, g := range f.groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, n := range g.names {
			fl := f.Lookup(n)
			name, usage := flag.UnquoteUsage(fl)
			head := "  --" + n
			if name != "" {
				head += " " + name
			}
			if f.required[n] {
				head += "   (required)"
			}
			fmt.Fprintln(w, head)
			fmt.Fprintf(w, "      %s", usage)
			if def := fl.DefValue; def != "" && def != "false" && def != "0" && def != "[]" {
				fmt.Fprintf(w, " (default %s)", def)
			}
			fmt.Fprintln(w)
		}
	}
	if examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s", examples)
	}
}

// parse parses args. -h/--help gives flag.ErrHelp; an unknown flag gives a
// usageError of one line naming the closest known flag; any other bad value
// a usageError naming the flag.
func (f *flagSet) parse(args []string) error {
	err := f.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return usageErrorf("%s: unknown flag --%s%s", f.Name(), name, f.suggest(name))
	}
	return usageErrorf("%s: %s", f.Name(), strings.Replace(msg, " -", " --", 1))
}

// suggest returns ` (did you mean --NAME?)` for the known flag closest to
// name, or "" when none is close.
func (f *flagSet) suggest(name string) string {
	best, bestD := "", 1<<30
	f.VisitAll(func(fl *flag.Flag) {
		if d := editDistance(name, fl.Name); d < bestD {
			best, bestD = fl.Name, d
		}
	})
	if best == "" || bestD > max(2, len(name)/3) {
		return ""
	}
	return " (did you mean --" + best + "?)"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// repeatable is a flag.Value that collects a list, one Set per item (or
// comma-separated items); reset empties it.
type repeatable interface {
	flag.Value
	reset()
}

// listFlag collects a repeatable string flag; a value may also hold a
// comma-separated list.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) reset() { *l.p = nil }

func (l listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

// prefixFlag collects repeatable CIDRs (or single addresses) as prefixes,
// checked when set.
type prefixFlag struct{ p *[]netip.Prefix }

func (l prefixFlag) String() string {
	if l.p == nil {
		return ""
	}
	s := make([]string, len(*l.p))
	for i, p := range *l.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l prefixFlag) reset() { *l.p = nil }

func (l prefixFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q: want a CIDR or an IP address", s)
		}
		*l.p = append(*l.p, p)
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// sizeFlag is a byte size: "1048576", "512KiB", "1MiB" or "1GiB".
type sizeFlag struct{ p *int64 }

func (s sizeFlag) String() string {
	if s.p == nil {
		return ""
	}
	return formatBytes(*s.p)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseBytes(v)
	if err != nil {
		return err
	}
	*s.p = n
	return nil
}

// parseBytes reads "1048576", "512KiB", "1MiB" or "1GiB".
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a positive size like 1048576 or 1MiB")
	}
	return n * mult, nil
}

// formatBytes writes n with the largest binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// invertedBool is a boolean flag stored inverted, for a flag that is on by
// default (--http2) backed by a field whose zero value means on.
type invertedBool struct{ off *bool }

func (b invertedBool) String() string {
	if b.off == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.off)
}

func (b invertedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b.off = !v
	return nil
}

func (b invertedBool) IsBoolFlag() bool { return true }

// pathFlag is a file or directory path, made absolute (against the working
// directory at start) when set, so that logs, check-config and reloads name
// one file whatever directory imedge runs from.
type pathFlag struct{ p *string }

func (f pathFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f pathFlag) Set(v string) error {
	if v == "" {
		*f.p = ""
		return nil
	}
	abs, err := filepath.Abs(v)
	if err != nil {
		return err
	}
	*f.p = abs
	return nil
}

// pathListFlag is a repeatable pathFlag.
type pathListFlag struct{ p *[]string }

func (l pathListFlag) String() string { return listFlag(l).String() }

func (l pathListFlag) reset() { *l.p = nil }

func (l pathListFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		abs, err := filepath.Abs(s)
		if err != nil {
			return err
		}
		*l.p = append(*l.p, abs)
	}
	return nil
}
