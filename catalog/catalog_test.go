package catalog

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
)

// TestCatalog_Counts pins the table to the protocol notes (61 commands:
// 49 after, 11 before, 1 reply) from below, so a new after-callback is one
// row and one example; the reply-consuming commands are listed by name,
// since each also needs reply cases here.
func TestCatalog_Counts(t *testing.T) {
	c := New()
	kinds := map[Kind]int{}
	var decides []string
	for _, cmd := range c.Commands() {
		kinds[cmd.Kind]++
		if cmd.Kind.Decides() {
			decides = append(decides, cmd.Name)
		}
	}
	assert.GreaterOrEqual(t, c.Len(), 61)
	assert.GreaterOrEqual(t, kinds[After], 49)
	assert.Equal(t, c.Len(), kinds[After]+kinds[Before]+kinds[Reply], "every command has a kind")
	assert.ElementsMatch(t, []string{
		"Sns.CallbackPrevFriendAdd", "Sns.CallbackPrevFriendResponse", "C2C.CallbackBeforeSendMsg",
		"Group.CallbackBeforeCreateGroup", "Group.CallbackBeforeApplyJoinGroup", "Group.CallbackBeforeInviteJoinGroup",
		"Group.CallbackBeforeSendMsg", "Group.CallbackBeforeCreateTopic", "OfficialAccount.CallbackBeforeCreateOfficialAccount",
		"OfficialAccount.CallbackBeforeAddSubscriber", "OfficialAccount.CallbackBeforeSendMsg", "Chatbot.OnC2CSignalMessage",
	}, decides)
	assert.Equal(t, 1, kinds[Reply])
}

func TestCatalog_Invariants(t *testing.T) {
	c := New()
	seen := map[string]bool{}
	for i, cmd := range c.Commands() {
		t.Run(cmd.Name, func(t *testing.T) {
			assert.False(t, seen[cmd.Name], "unique name")
			seen[cmd.Name] = true
			require.NoError(t, CheckPattern(cmd.Name), "a valid exact pattern")
			assert.Equal(t, strings.SplitN(cmd.Name, ".", 2)[0], cmd.Family)
			got, ok := c.Lookup(cmd.Name)
			require.True(t, ok)
			assert.Same(t, got, &c.cmds[i], "Lookup returns the table's entry")
			assert.True(t, strings.HasPrefix(cmd.Source, "https://"), "source URL %q", cmd.Source)
			assert.Contains(t, []Kind{After, Before, Reply}, cmd.Kind)
			assert.Equal(t, cmd.Kind.Decides(), cmd.Reply != nil, "a reply schema exactly for the commands whose reply IM reads")

			// The families IM triggers itself carry no ClientIP
			// (im-callbacks.md §1.2); Alert.RequestOverLimit alone of them
			// still carries OptPlatform.
			switch cmd.Family {
			case "Push", "ContentCallback":
				assert.False(t, cmd.ClientIP)
				assert.False(t, cmd.OptPlatform)
			case "Alert":
				assert.False(t, cmd.ClientIP)
				assert.True(t, cmd.OptPlatform)
			default:
				assert.True(t, cmd.ClientIP)
				assert.True(t, cmd.OptPlatform)
			}
			wantBodyCommand := cmd.Family != "Push" && cmd.Name != "ContentCallback.ResultNotify"
			assert.Equal(t, wantBodyCommand, cmd.BodyCommand)

			checkFields(t, cmd.Fields, "")

			ex := cmd.Example()
			require.NotEmpty(t, ex, "every command ships an example body")
			var m map[string]any
			require.NoError(t, json.Unmarshal(ex, &m), "the example is a JSON object")
			if cmd.BodyCommand {
				assert.Equal(t, cmd.Name, m["CallbackCommand"])
			} else {
				assert.NotContains(t, m, "CallbackCommand")
			}
			for _, p := range cmd.Required() {
				assert.True(t, hasPath(m, p), "the example carries required field %s", p)
			}
		})
	}
}

// checkFields checks the invariants of one object's fields.
func checkFields(t *testing.T, fs []Field, parent string) {
	t.Helper()
	assert.LessOrEqual(t, len(fs), 64, "the receiver tracks an object's required fields in 64 bits")
	names := map[string]bool{}
	for _, f := range fs {
		assert.NotEmpty(t, f.Name)
		assert.False(t, names[f.Name], "field %s listed twice", f.Path)
		names[f.Name] = true
		if parent == "" {
			assert.NotEqual(t, "CallbackCommand", f.Name, "the top-level CallbackCommand is the receiver's, not a field")
		}
		want := f.Name
		if parent != "" {
			want = parent + "." + f.Name
		}
		assert.Equal(t, want, f.Path)
		assert.Contains(t, []Type{String, Number, Time, Object, Array, Strings, Objects}, f.Type, "field %s has a type", f.Path)
		assert.NotEmpty(t, f.Reason)
		assert.Contains(t, []audit.Reason{audit.BadField, audit.BadPairList}, f.Reason)
		if f.Account || f.ID {
			assert.Contains(t, []Type{String, Strings}, f.Type, "ids are strings: %s", f.Path)
			assert.False(t, f.Account && f.ID, "%s is an account or an id, not both", f.Path)
		}
		if strings.HasSuffix(f.Name, "_Account") {
			assert.True(t, f.Account, "%s is an account", f.Path)
		}
		if f.ID {
			assert.Equal(t, MaxIDBytes, f.MaxBytes)
		}
		switch f.Type {
		case Array, Strings, Objects:
			assert.Positive(t, f.MaxItems)
			assert.LessOrEqual(t, f.MinItems, f.MaxItems)
		default:
			assert.Zero(t, f.MaxItems)
			assert.Zero(t, f.MinItems)
		}
		if f.Type == Object || f.Type == Objects {
			child := f.Path
			if f.Type == Objects {
				child += "[]"
			}
			checkFields(t, f.Fields, child)
		} else {
			assert.Empty(t, f.Fields, "only objects have fields: %s", f.Path)
		}
		assert.False(t, f.NothingIfEmpty && f.Type != Objects && f.Type != Array && f.Type != Strings)
	}
}

// hasPath reports whether m holds the field at path ("A.B", "A[].B": in
// every element).
func hasPath(m map[string]any, path string) bool {
	head, rest, _ := strings.Cut(path, ".")
	if name, ok := strings.CutSuffix(head, "[]"); ok {
		list, ok := m[name].([]any)
		if !ok || rest == "" {
			return ok
		}
		for _, e := range list {
			em, ok := e.(map[string]any)
			if !ok || !hasPath(em, rest) {
				return false
			}
		}
		return true
	}
	v, ok := m[head]
	if !ok || v == nil {
		return false
	}
	if rest == "" {
		return true
	}
	sub, ok := v.(map[string]any)
	return ok && hasPath(sub, rest)
}

func TestCatalog_Paths(t *testing.T) {
	c := New()
	fd, ok := c.Lookup("Sns.CallbackFriendDelete")
	require.True(t, ok)
	assert.Equal(t, []string{"PairList", "PairList[].From_Account", "PairList[].To_Account"}, fd.Required())
	assert.Equal(t, audit.BadPairList, fd.Fields[0].Reason)
	assert.Equal(t, audit.BadPairList, fd.Fields[0].Fields[0].Reason, "a pair lacking an account is a PairList problem")
	assert.True(t, fd.Fields[0].NothingIfEmpty)

	st, _ := c.Lookup("State.StateChange")
	assert.Equal(t, []string{"Info", "Info.To_Account"}, st.Required())

	push, _ := c.Lookup("Push.OfflinePush")
	require.Equal(t, "Events", push.Fields[0].Name)
	assert.Equal(t, 1, push.Fields[0].MinItems)
	assert.Equal(t, 100, push.Fields[0].MaxItems)
}

func TestCatalog_FreshCopies(t *testing.T) {
	a, b := New(), New()
	ca := a.Commands()
	ca[0].Name = "changed"
	ca[0].Fields[0].Name = "changed"
	assert.NotEqual(t, "changed", b.Commands()[0].Fields[0].Name, "another catalog is not affected")
	got, _ := a.Lookup(a.Commands()[0].Name)
	assert.NotEqual(t, "changed", got.Name, "the slice Commands returns is the caller's")
}

func TestCatalog_LookupUnknown(t *testing.T) {
	c := New()
	_, ok := c.Lookup("Group.CallbackAfterSomethingNew")
	assert.False(t, ok)
	_, ok = c.Lookup("sns.callbackfrienddelete")
	assert.False(t, ok, "names are case-sensitive")
	var zero Catalog
	_, ok = zero.Lookup("Sns.CallbackFriendDelete")
	assert.False(t, ok, "the zero Catalog is empty")
	assert.Zero(t, zero.Len())
}

func TestCatalog_ServedByDefault(t *testing.T) {
	for _, cmd := range New().Commands() {
		assert.Equal(t, cmd.Kind == After, cmd.ServedByDefault(), cmd.Name)
	}
}

func TestCheckPattern(t *testing.T) {
	for _, p := range []string{"*", "Group.*", "Sns.CallbackFriendDelete", "Group.CallbackAfterSomethingNew", "A_1.B_2"} {
		assert.NoError(t, CheckPattern(p), p)
	}
	for _, p := range []string{"", "Group", "Group.", ".*", "*.*", "Group.**", "Group.Callback*", "Gro up.*", "Group.A.B", "**", "Group.*x", "Grüppe.*"} {
		assert.ErrorIs(t, CheckPattern(p), ErrBadPattern, p)
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "Group.CallbackAfterSendMsg", true},
		{"*", "Anything.Else", true},
		{"Group.*", "Group.CallbackAfterSendMsg", true},
		{"Group.*", "GroupX.CallbackAfterSendMsg", false},
		{"Group.*", "group.CallbackAfterSendMsg", false},
		{"Group.*", "Group.", false},
		{"Group.*", "Group", false},
		{"C2C.*", "C2C.CallbackBeforeSendMsg", true},
		{"Sns.CallbackFriendDelete", "Sns.CallbackFriendDelete", true},
		{"Sns.CallbackFriendDelete", "Sns.CallbackFriendDeleteX", false},
		{"Sns.CallbackFriendDelete", "sns.callbackfrienddelete", false},
	} {
		assert.Equal(t, tc.want, Match(tc.pattern, tc.name), "%s vs %s", tc.pattern, tc.name)
	}
}

func TestKindAndTypeNames(t *testing.T) {
	assert.Equal(t, "after", After.String())
	assert.Equal(t, "before", Before.String())
	assert.Equal(t, "reply", Reply.String())
	assert.Equal(t, "invalid", Kind(0).String())
	assert.Equal(t, "timestamp", Time.String())
	assert.Equal(t, "array of objects", Objects.String())
	assert.Equal(t, "invalid", Type(0).String())
	for o, s := range map[Outcome]string{Allow: "allow", Deny: "deny", Rewrite: "rewrite", Drop: "drop", Partial: "partial", 0: "invalid"} {
		assert.Equal(t, s, o.String())
	}
}
