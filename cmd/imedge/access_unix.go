//go:build unix

package main

import "golang.org/x/sys/unix"

// accessWrite reports whether this process may create files in dir.
func accessWrite(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }
