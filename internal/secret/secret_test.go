package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replace writes v to path as rotation tools do: a new file renamed over
// the old one.
func replace(t *testing.T, path, v string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSourceFileRotation: a Source reads its file again once it was
// replaced (atomically or in place), and only then; a file that vanishes
// keeps the last value, flagged stale.
func TestSourceFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	replace(t, path, "one")
	src, err := NewSource(Secret{File: path}, "kafka.sasl.token")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if v, changed, err := src.Value(); v != "one" || changed || err != nil {
			t.Fatalf("Value = %q, %v, %v; want one, unchanged", v, changed, err)
		}
	}
	if n := src.Reads(); n != 1 {
		t.Fatalf("file read %d times for an unchanged file; want once (a stat per Value)", n)
	}

	replace(t, path, "two")
	if v, changed, err := src.Value(); v != "two" || !changed || err != nil {
		t.Fatalf("after an atomic replacement: Value = %q, %v, %v; want two, changed", v, changed, err)
	}

	// In place, longer: size and mtime change, identity does not.
	if err := os.WriteFile(path, []byte("three-longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, changed, err := src.Value(); v != "three-longer" || !changed || err != nil {
		t.Fatalf("after an in-place write: Value = %q, %v, %v; want three-longer, changed", v, changed, err)
	}
	reads := src.Reads()

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	v, _, err := src.Value()
	if v != "three-longer" || !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "kafka.sasl.token") {
		t.Fatalf("file removed: Value = %q, %v; want the last value and ErrStale naming the setting", v, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil { // truncated, mid-write
		t.Fatal(err)
	}
	if v, _, err := src.Value(); v != "three-longer" || !errors.Is(err, ErrStale) {
		t.Fatalf("file empty: Value = %q, %v; want the last value and ErrStale", v, err)
	}
	replace(t, path, "four")
	if v, changed, err := src.Value(); v != "four" || !changed || err != nil {
		t.Fatalf("file back: Value = %q, %v, %v; want four, changed", v, changed, err)
	}
	if src.Reads() <= reads {
		t.Fatal("the file was not read again")
	}
}

// TestSourceEnv: a variable is looked up again at every Value.
func TestSourceEnv(t *testing.T) {
	t.Setenv("SECRET_TEST_PASSWORD", "one")
	src, err := NewSource(Secret{Env: "SECRET_TEST_PASSWORD"}, "kafka.sasl.password")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SECRET_TEST_PASSWORD", "two")
	if v, changed, err := src.Value(); v != "two" || !changed || err != nil {
		t.Fatalf("Value = %q, %v, %v; want two, changed", v, changed, err)
	}
}

// TestNewSourceErrors: a missing or ambiguous secret fails at once, naming
// the setting and never a value.
func TestNewSourceErrors(t *testing.T) {
	for _, c := range []struct {
		s    Secret
		want string
	}{
		{Secret{}, "exactly one"},
		{Secret{Value: "x", Env: "Y"}, "exactly one"},
		{Secret{File: filepath.Join(t.TempDir(), "missing")}, "no such file"},
		{Secret{Env: "SECRET_TEST_UNSET_VARIABLE"}, "not set"},
	} {
		_, err := NewSource(c.s, "kafka.sasl.password")
		if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error naming kafka.sasl.password and %q", c.s, err, c.want)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := NewSource(Secret{File: empty}, "kafka.sasl.token"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v; want an error saying it is empty", err)
	}
}
