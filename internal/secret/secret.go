// Package secret reads a secret from where the operator keeps it: given
// inline, in a file (a mounted Kubernetes secret), or in an environment
// variable, so config.yaml never has to hold one.
//
// A Source reads it again whenever it may have changed, so that a secret
// rotated by replacing its file (a refreshed Kubernetes secret, a Vault
// agent, a sidecar renewing an OAuth token) is picked up without a restart.
package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Secret is one of Value, File or Env.
type Secret struct {
	Value string `yaml:"value"`
	File  string `yaml:"file"`
	Env   string `yaml:"env"`
}

// IsSet reports whether any source is given.
func (s Secret) IsSet() bool { return s.Value != "" || s.File != "" || s.Env != "" }

// check reports a Secret that gives not exactly one source.
func (s Secret) check(what string) error {
	set := 0
	for _, v := range []string{s.Value, s.File, s.Env} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("%s: give exactly one of value, file, env", what)
	}
	return nil
}

// Resolve returns the secret; what names the setting in errors.
func (s Secret) Resolve(what string) (string, error) {
	if err := s.check(what); err != nil {
		return "", err
	}
	switch {
	case s.File != "":
		return readFile(what, s.File)
	case s.Env != "":
		return readEnv(what, s.Env)
	}
	return s.Value, nil
}

// Where says where the secret comes from, for messages: "file /path",
// "environment variable NAME" or "the config file". Never the secret.
func (s Secret) Where() string {
	switch {
	case s.File != "":
		return "file " + s.File
	case s.Env != "":
		return "environment variable " + s.Env
	}
	return "the config file"
}

func readFile(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func readEnv(what, name string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", what, name)
	}
	return v, nil
}

// ErrStale marks a Value that is the last one read because the secret's
// file cannot be read now (removed, empty, unreadable): a rotation that
// writes the file in place instead of replacing it atomically shows such
// moments. The caller logs it and goes on with the value.
var ErrStale = errors.New("kept the last value read")

// Source reads a Secret again whenever it may have changed: a file is
// read again when its identity, size or modification time changed (one
// stat per Value otherwise), a variable is looked up each time. Safe for
// concurrent use.
type Source struct {
	s    Secret
	what string

	mu    sync.Mutex
	val   string
	stamp stamp
	reads int // times the file was read (tests)
}

// stamp is what tells a file's content changed without reading it: an
// atomic replacement (rename, a Kubernetes secret's symlink swap) changes
// the file's identity, an in-place write its size or modification time.
type stamp struct {
	fi    os.FileInfo
	size  int64
	mtime time.Time
}

func (a stamp) same(b os.FileInfo) bool {
	return a.fi != nil && os.SameFile(a.fi, b) && a.size == b.Size() && a.mtime.Equal(b.ModTime())
}

// NewSource checks s, reads it once (so a missing secret fails at start-up,
// naming the setting what) and returns its Source.
func NewSource(s Secret, what string) (*Source, error) {
	if err := s.check(what); err != nil {
		return nil, err
	}
	src := &Source{s: s, what: what}
	if _, _, err := src.Value(); err != nil {
		return nil, err
	}
	return src, nil
}

// Secret is what the Source reads.
func (src *Source) Secret() Secret { return src.s }

// Name is the setting the Source reads, as given to NewSource.
func (src *Source) Name() string { return src.what }

// Value returns the secret as it is now, and whether it differs from the
// previous Value. When the file cannot be read but was read before, it
// returns the last value with an error wrapping ErrStale.
func (src *Source) Value() (v string, changed bool, err error) {
	switch {
	case src.s.Env != "":
		v, err = readEnv(src.what, src.s.Env)
	case src.s.File != "":
		return src.file()
	default:
		v = src.s.Value
	}
	if err != nil {
		return "", false, err
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	changed = src.val != "" && v != src.val
	src.val = v
	return v, changed, nil
}

func (src *Source) file() (string, bool, error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	fi, err := os.Stat(src.s.File)
	if err == nil && src.stamp.same(fi) {
		return src.val, false, nil
	}
	var v string
	if err == nil {
		v, err = readFile(src.what, src.s.File)
		src.reads++
		if err == nil && v == "" {
			err = fmt.Errorf("%s: file %s is empty", src.what, src.s.File)
		}
	} else {
		err = fmt.Errorf("%s: %w", src.what, err)
	}
	if err != nil {
		if src.val == "" {
			return "", false, err
		}
		return src.val, false, fmt.Errorf("%w: %w", ErrStale, err)
	}
	// The stamp is the one taken before the read: a write after the stat
	// changes it again, so the next Value reads once more.
	changed := src.val != "" && v != src.val
	src.val, src.stamp = v, stamp{fi: fi, size: fi.Size(), mtime: fi.ModTime()}
	return v, changed, nil
}

// Reads is how many times the file was read (for tests of the cache).
func (src *Source) Reads() int {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.reads
}
