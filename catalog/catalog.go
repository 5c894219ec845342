package catalog

import (
	"fmt"
	"strings"

	"github.com/imedge/imedge/audit"
)

// Catalog is the command table. It is created by [New], never changes
// afterwards and is safe for concurrent use. The zero value is an empty
// catalog.
type Catalog struct {
	cmds  []Command
	index map[string]int
}

// New builds the catalog from the table. Each call returns a fresh copy, so
// nothing one caller does to its Commands can reach another's.
func New() *Catalog {
	rows := table()
	c := &Catalog{cmds: make([]Command, 0, len(rows)), index: make(map[string]int, len(rows))}
	for _, e := range rows {
		cmd := Command{
			Name:        e.name,
			Family:      family(e.name),
			Kind:        e.kind,
			ClientIP:    e.omit&noClientIP == 0,
			OptPlatform: e.omit&noOptPlatform == 0,
			BodyCommand: e.omit&noBodyCommand == 0,
			Source:      e.src,
			Fields:      finish(e.fields, ""),
			Reply:       e.reply,
		}
		c.index[cmd.Name] = len(c.cmds)
		c.cmds = append(c.cmds, cmd)
	}
	return c
}

// finish fills in the derived parts of fields (Path, Reason, bounds) on a
// copy, recursively.
func finish(fields []Field, parent string) []Field {
	out := make([]Field, len(fields))
	for i, f := range fields {
		f.Path = f.Name
		if parent != "" {
			f.Path = parent + "." + f.Name
		}
		if f.Reason == "" {
			f.Reason = audit.BadField
		}
		if f.ID && f.MaxBytes == 0 {
			f.MaxBytes = MaxIDBytes
		}
		switch f.Type {
		case Array, Strings, Objects:
			if f.MaxItems == 0 {
				f.MaxItems = MaxItems
			}
		}
		child := f.Path
		if f.Type == Objects {
			child += "[]"
		}
		if len(f.Fields) > 0 {
			f.Fields = finish(f.Fields, child)
			for j := range f.Fields {
				if f.Reason != audit.BadField && f.Fields[j].Reason == audit.BadField {
					// A structural problem inside (a pair lacking an account)
					// is a problem of the parent (bad_pairlist).
					f.Fields[j].Reason = f.Reason
				}
			}
		}
		out[i] = f
	}
	return out
}

// Lookup returns the command named name (case-sensitive, as IM sends it).
func (c *Catalog) Lookup(name string) (*Command, bool) {
	i, ok := c.index[name]
	if !ok {
		return nil, false
	}
	return &c.cmds[i], true
}

// Commands returns every command in table order. The slice is the
// caller's; the Commands in it share their Fields with the catalog and must
// not be modified.
func (c *Catalog) Commands() []Command {
	return append([]Command(nil), c.cmds...)
}

// Len returns the number of commands.
func (c *Catalog) Len() int { return len(c.cmds) }

// CheckPattern checks a command pattern: "*" (every command), a family glob
// such as "Group.*", or an exact command such as "Group.CallbackAfterSendMsg".
// Names are made of ASCII letters, digits and underscores. An exact command
// need not be in the catalog (it may name a command Tencent published
// after it). Errors wrap [ErrBadPattern].
func CheckPattern(p string) error {
	if p == "*" {
		return nil
	}
	fam, rest, ok := strings.Cut(p, ".")
	if !ok || !isName(fam) || (rest != "*" && !isName(rest)) {
		return fmt.Errorf("pattern %q: want *, Family.* or Family.Command: %w", p, ErrBadPattern)
	}
	return nil
}

// Match reports whether the pattern matches the command name: "*" matches
// every name, "Fam.*" every name of family Fam, anything else only itself.
// Matching is case-sensitive. A pattern CheckPattern refuses matches
// nothing it would not match as an exact name.
func Match(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if fam, ok := strings.CutSuffix(pattern, ".*"); ok {
		return len(name) > len(fam)+1 && name[len(fam)] == '.' && name[:len(fam)] == fam
	}
	return pattern == name
}

// isName reports whether s is a non-empty run of ASCII letters, digits and
// underscores.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
