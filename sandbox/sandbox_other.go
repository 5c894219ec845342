//go:build !linux

package sandbox

import "runtime"

// Apply does nothing outside Linux: Landlock is a Linux LSM.
func Apply(o Options) (Result, error) {
	if _, err := o.resolve(); err != nil {
		return Result{}, err
	}
	return Result{Mode: ModeUnsupported, Reason: "Landlock exists only on Linux, not " + runtime.GOOS}, nil
}
