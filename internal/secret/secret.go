// Package secret reads a secret from where the operator keeps it: given
// inline, in a file (a mounted Kubernetes secret), or in an environment
// variable, so config.yaml never has to hold one.
package secret

import (
	"fmt"
	"os"
	"strings"
)

// Secret is one of Value, File or Env.
type Secret struct {
	Value string `yaml:"value"`
	File  string `yaml:"file"`
	Env   string `yaml:"env"`
}

// IsSet reports whether any source is given.
func (s Secret) IsSet() bool { return s.Value != "" || s.File != "" || s.Env != "" }

// Resolve returns the secret; what names the setting in errors.
func (s Secret) Resolve(what string) (string, error) {
	set := 0
	for _, v := range []string{s.Value, s.File, s.Env} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return "", fmt.Errorf("%s: give exactly one of value, file, env", what)
	}
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return strings.TrimSpace(string(b)), nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", what, s.Env)
		}
		return v, nil
	}
	return s.Value, nil
}
