package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/flightsink/flightsink/internal/secret"
)

// The environment reaches every setting: kafka.tls.enabled is
// FLIGHTSINK_KAFKA_TLS_ENABLED, and so on for each setting config.yaml
// lists (Settings). Single values are written as themselves (durations as
// 30s); lists of single values as a,b,c or a YAML/JSON list; structured
// settings (auth.tokens, auth.principals, ...) and maps as YAML or JSON. A
// secret (kafka.sasl.password, ...) is the variable's value, or with the
// suffix _FILE the path of a file holding it. A variable replaces the whole
// setting it names.
//
// A FLIGHTSINK_* variable that is none of these is a start-up error naming
// the nearest setting, as an unknown key in the file is, except the names a
// config's {env: NAME} secrets read, the variables Kubernetes injects for a
// Service whose name starts with flightsink (FLIGHTSINK_SERVICE_HOST,
// FLIGHTSINK_PORT_8815_TCP, ...), and the project's own test and script
// variables (toolingVariables).
//
// Why not a configuration library (koanf, envconfig, viper): none of them
// refuses unknown variables with the nearest name, maps one variable to a
// nested list of secrets, or reports errors by setting name rather than Go
// type; the walk below is the YAML decoder's (decode.go), so the file and
// the environment accept the same values and fail with the same words.

// EnvPrefix starts every variable flightsink reads its settings from.
const EnvPrefix = "FLIGHTSINK_"

// Setting is one configurable value.
type Setting struct {
	// Path is its name in the file: kafka.tls.enabled.
	Path string
	// Env is the variable that sets it: FLIGHTSINK_KAFKA_TLS_ENABLED.
	Env string
	// Secret settings may also come from a file: Env + "_FILE".
	Secret bool

	index []int
	typ   reflect.Type
}

// Settings lists every setting, in the order of the Config structs.
func Settings() []Setting {
	var out []Setting
	var walk func(t reflect.Type, path string, index []int)
	walk = func(t reflect.Type, path string, index []int) {
		fields := sectionFields(t)
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if _, ok := fields[name]; !ok {
				continue
			}
			p := join(path, name)
			idx := append(append([]int(nil), index...), f.Index...)
			if f.Type.Kind() == reflect.Struct && f.Type != secretType && !implementsUnmarshaler(f.Type) {
				walk(f.Type, p, idx)
				continue
			}
			out = append(out, Setting{Path: p, Env: EnvName(p), Secret: f.Type == secretType, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out
}

func implementsUnmarshaler(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem())
}

// EnvName is the variable of the setting at path: kafka.tls.enabled →
// FLIGHTSINK_KAFKA_TLS_ENABLED.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// kubernetesVariable matches what the kubelet injects for a Service named
// flightsink or flightsink-*: FLIGHTSINK_SERVICE_HOST,
// FLIGHTSINK_SERVICE_PORT[_NAME], FLIGHTSINK_PORT[_8815_TCP[_PROTO|_PORT|_ADDR]].
var kubernetesVariable = regexp.MustCompile(
	`^FLIGHTSINK(_[A-Z0-9_]+?)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// toolingVariables are the project's own script and test variables
// (scripts/test.sh lists them); they configure the tests, not a server, and
// a developer's shell that exports them must still run flightsink.
var toolingVariables = map[string]bool{
	"FLIGHTSINK_CACHE_DIR": true, "FLIGHTSINK_KAFKA_SCRIPT": true, "FLIGHTSINK_BIN": true,
	"FLIGHTSINK_SKIP_INSTALL": true, "FLIGHTSINK_MEMTEST_BYTES": true,
	// the admin commands' (flightsink writers / transactions) connection
	"FLIGHTSINK_SERVER": true, "FLIGHTSINK_TOKEN": true, "FLIGHTSINK_PASSWORD": true,
}

// ignoredVariable reports whether a FLIGHTSINK_* variable is not a setting
// and not a mistake either.
func ignoredVariable(name string) bool {
	return kubernetesVariable.MatchString(name) || toolingVariables[name] || strings.HasPrefix(name, "FLIGHTSINK_TEST_")
}

// applyEnv sets every setting whose variable environ holds, then refuses
// FLIGHTSINK_* variables that are no setting.
func applyEnv(cfg *Config, environ []string) error {
	byEnv := map[string]Setting{}
	for _, s := range Settings() {
		byEnv[s.Env] = s
	}
	env := map[string]string{}
	var names []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		if _, dup := env[k]; !dup {
			names = append(names, k)
		}
		env[k] = v
	}
	sort.Strings(names)
	root := reflect.ValueOf(cfg).Elem()
	var unknown []string
	for _, name := range names {
		val := env[name]
		s, ok := byEnv[name]
		file := false
		if !ok {
			if base, cut := strings.CutSuffix(name, "_FILE"); cut && byEnv[base].Secret {
				if _, both := env[base]; both {
					return fmt.Errorf("%s and %s: set one of them (%s)", base, name, byEnv[base].Path)
				}
				s, ok, file = byEnv[base], true, true
			}
		}
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		if err := setFromEnv(root.FieldByIndex(s.index), s, val, file); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	referenced := secretEnvNames(root)
	for _, name := range unknown {
		if referenced[name] || ignoredVariable(name) {
			continue
		}
		candidates := make([]string, 0, len(byEnv))
		var inSection []string
		for e := range byEnv {
			candidates = append(candidates, e)
			if strings.HasPrefix(e, name+"_") {
				inSection = append(inSection, e)
			}
		}
		if len(inSection) > 0 {
			sort.Strings(inSection)
			return fmt.Errorf("%s is a section, not a setting: set its settings, %s", name, strings.Join(inSection, ", "))
		}
		near := nearest(name, candidates)
		return fmt.Errorf("%s is not a setting; did you mean %s (%s)? Every setting has a variable: %s<SECTION>_<KEY>, "+
			"as config.yaml lists them", name, near, byEnv[near].Path, EnvPrefix)
	}
	return nil
}

// setFromEnv sets one setting from its variable's text.
func setFromEnv(v reflect.Value, s Setting, val string, file bool) error {
	if s.Secret {
		if file {
			v.Set(reflect.ValueOf(secret.Secret{File: val}))
		} else {
			v.Set(reflect.ValueOf(secret.Secret{Value: val}))
		}
		return nil
	}
	var n yaml.Node
	switch {
	case isSingleValue(s.typ) || s.typ == durationType:
		n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
	case s.typ.Kind() == reflect.Slice && isSingleValue(s.typ.Elem()) && !strings.HasPrefix(strings.TrimSpace(val), "["):
		n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val} // a,b,c
	default:
		if err := yaml.Unmarshal([]byte(val), &n); err != nil {
			return fmt.Errorf("%s: not valid YAML or JSON%s: %v", s.Path, example(s.Path), err)
		}
	}
	fresh := reflect.New(v.Type()).Elem() // the variable replaces the setting whole
	if err := decodeNode(fresh, &n, s.Path); err != nil {
		return err
	}
	v.Set(fresh)
	return nil
}

// secretEnvNames are the variables the config's secrets read ({env: NAME}).
func secretEnvNames(v reflect.Value) map[string]bool {
	out := map[string]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			if v.Type() == secretType {
				if name := v.Interface().(secret.Secret).Env; name != "" {
					out[name] = true
				}
				return
			}
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		}
	}
	walk(v)
	return out
}
