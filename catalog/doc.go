// Package catalog is imedge's table of Tencent Cloud IM callback commands,
// as data: every command IM posts to the app's callback URL (61 as of the
// protocol notes of 2026-03), with its family, its kind (after: IM ignores
// the reply; before: IM acts on the app's decision; reply: IM passes the
// app's data on), which query parameters IM sends, whether the body
// carries a top-level CallbackCommand, the body fields imedge checks, and,
// for the twelve commands whose reply IM reads, the reply schema with each
// command's well-formed allow and deny fallback bodies.
//
// # What is checked
//
// A command's [Field] list names the fields imedge checks; every other
// field is forwarded untouched. Account ids (*_Account) are bounded by the
// receiver's configured maximum account bytes, other ids by [MaxIDBytes],
// arrays by [MaxItems] unless the entry says otherwise (Push.* batches hold
// 1 to 100 events). Required fields are only those that identify the event
// (the account, group or message ids) and that every documented example
// carries: IM does not retry an after-callback, so a wrongly strict refusal
// loses it for good. A field whose type the documentation does not make
// certain is left out rather than guessed.
//
// # Adding a command
//
// When Tencent publishes a command, add one row to the table in table.go
// and its example body as examples/<CallbackCommand>.json. The tests here
// check the row's invariants and regenerate docs/commands.md (go test
// ./catalog -run TestCommandsDoc -update); the receiver's tests take every
// command and its example from the catalog, so the new one is covered
// (accepted byte for byte, and refused when mutated) without further code.
//
// # What it does not own
//
// The package validates nothing on the request path itself: the receiver
// compiles the table into its one-pass scanner. It does not decide which
// commands are served (the receiver's Options, default: every After
// command), does not route, and does not call decision services; it only
// describes their replies ([Command.CheckReply], [Command.Fallback]).
//
// A [Catalog] is immutable after [New] and safe for concurrent use; the
// package holds no mutable state.
package catalog
