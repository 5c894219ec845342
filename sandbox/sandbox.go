package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Options lists what the process may touch after Apply. Paths may be
// relative (to the working directory) and may be symbolic links; missing
// paths are an error except where noted.
type Options struct {
	// ReadFiles are files re-read after start (certificates, keys, CRLs).
	// Read access is granted on their directories, and on the directories
	// of their symlink targets, so that a file replaced by rename (the
	// atomic-rotation convention) stays readable.
	ReadFiles []string
	// ReadDirs are directories whose content may be read.
	ReadDirs []string
	// WriteDirs are directories where files may be created, written,
	// truncated and removed (state, outbox, ACME storage). They are created
	// when missing.
	WriteDirs []string
	// AppendFiles are files opened for appending that may be re-created
	// after rotation (the audit log): their directory may have files created
	// and written, not removed.
	AppendFiles []string
}

// Mode says whether the process is confined.
type Mode string

// Modes reported in Result.
const (
	ModeLandlock    Mode = "landlock"    // confined by Landlock
	ModeUnsupported Mode = "unsupported" // the kernel or OS has no Landlock; running unconfined
	ModeOff         Mode = "off"         // turned off by the operator
)

// Result reports what Apply did.
type Result struct {
	Mode Mode
	// ABI is the kernel's Landlock ABI version; 0 without Landlock.
	ABI int
	// Reason says why this mode is in effect, in a few words.
	Reason string
	// Read and Write are the paths access was granted to (directories and
	// files, as given to Landlock), for the start log.
	Read, Write []string
}

// Off returns the Result for a sandbox turned off by the operator.
func Off(reason string) Result { return Result{Mode: ModeOff, Reason: reason} }

// plan is the resolved list of paths of an Options.
type plan struct {
	readDirs, writeDirs, appendDirs []string
}

// systemReadFiles are read by the Go runtime and resolver after start.
// Missing ones are skipped.
func systemReadFiles() []string {
	files := []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
		"/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/ld.so.cache"}
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		files = append(files, f)
	}
	return files
}

// systemReadDirs hold the system CA roots, time zones, and the shared
// libraries glibc's resolver loads (NSS modules) when Go falls back to it
// for a host name (an nsswitch.conf with entries Go does not implement).
// Missing ones are skipped.
func systemReadDirs() []string {
	dirs := []string{"/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates",
		"/usr/local/share/ca-certificates", "/usr/share/zoneinfo",
		"/lib", "/lib64", "/usr/lib", "/usr/lib64"}
	if d := os.Getenv("SSL_CERT_DIR"); d != "" {
		dirs = append(dirs, filepath.SplitList(d)...)
	}
	return dirs
}

// resolve turns Options into absolute, de-duplicated paths.
func (o Options) resolve() (plan, error) {
	var p plan
	abs := func(path string) (string, error) {
		a, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("resolving %q: %w", path, err)
		}
		if !filepath.IsAbs(a) {
			return "", fmt.Errorf("resolving %q: %w", path, ErrRelativePath)
		}
		return a, nil
	}
	for _, f := range o.ReadFiles {
		a, err := abs(f)
		if err != nil {
			return plan{}, err
		}
		p.readDirs = append(p.readDirs, filepath.Dir(a))
		if t, err := filepath.EvalSymlinks(a); err == nil && t != a {
			p.readDirs = append(p.readDirs, filepath.Dir(t))
		}
	}
	for _, d := range o.ReadDirs {
		a, err := abs(d)
		if err != nil {
			return plan{}, err
		}
		p.readDirs = append(p.readDirs, a)
	}
	for _, d := range o.WriteDirs {
		a, err := abs(d)
		if err != nil {
			return plan{}, err
		}
		if err := os.MkdirAll(a, 0o700); err != nil {
			return plan{}, fmt.Errorf("creating writable directory: %w", err)
		}
		p.writeDirs = append(p.writeDirs, a)
	}
	for _, f := range o.AppendFiles {
		a, err := abs(f)
		if err != nil {
			return plan{}, err
		}
		p.appendDirs = append(p.appendDirs, filepath.Dir(a))
	}
	for _, s := range []*[]string{&p.readDirs, &p.writeDirs, &p.appendDirs} {
		slices.Sort(*s)
		*s = slices.Compact(*s)
	}
	return p, nil
}
