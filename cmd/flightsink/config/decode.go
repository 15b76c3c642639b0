package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/flightsink/flightsink/internal/secret"
)

// Decoding walks a parsed YAML node against the Config's type, so every
// error names the setting (kafka.tls.enabled, auth.tokens[1].principal) and
// says in the user's words what would be accepted ("use a duration such as
// 30s"), where yaml.v3's own errors name Go types. Sections (structs) are
// merged key by key, so a file or variable sets only what it names; lists
// and single values are replaced whole.

var (
	durationType = reflect.TypeOf(time.Duration(0))
	secretType   = reflect.TypeOf(secret.Secret{})
)

// decodeNode sets v (addressable) from n; path is the setting's name.
func decodeNode(v reflect.Value, n *yaml.Node, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == 0 { // an empty file
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return decodeNode(v, n.Content[0], path)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if v.Kind() != reflect.Struct { // an empty section leaves its settings as they are
			v.Set(reflect.Zero(v.Type()))
		}
		return nil
	}
	t := v.Type()
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok { // a type that reads itself
		if err := n.Decode(u); err != nil {
			return fmt.Errorf("%s: %v%s", path, err, example(path))
		}
		return nil
	}
	switch {
	case t == secretType && n.Kind != yaml.MappingNode:
		return fmt.Errorf("%s: expects {env: NAME}, {file: PATH} or {value: TEXT}, not %s", path, kindName(n))
	case t == durationType:
		s, err := scalar(n, path, "a duration such as 30s")
		if err != nil {
			return err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
				return fmt.Errorf("%s: %s has no unit: use a duration such as %ss (s, ms, m, h)", path, s, s)
			}
			return fmt.Errorf("%s: %q is not a duration: use one such as 30s, 500ms or 5m", path, s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		s, err := scalar(n, path, "a text value")
		if err != nil {
			return err
		}
		v.SetString(s)
	case reflect.Bool:
		s, err := scalar(n, path, "true or false")
		if err != nil {
			return err
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", path, s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, err := scalar(n, path, "a whole number")
		if err != nil {
			return err
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, t.Bits())
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return fmt.Errorf("%s: %s is out of range (at most %d)", path, s, int64(math.MaxInt64>>(64-t.Bits())))
			}
			return fmt.Errorf("%s: %q is not a whole number (e.g. 64 or 1048576)", path, s)
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		s, err := scalar(n, path, "a number")
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), t.Bits())
		if err != nil {
			return fmt.Errorf("%s: %q is not a number (e.g. 0.5 or 100)", path, s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		return decodeList(v, n, path)
	case reflect.Map:
		return decodeMap(v, n, path)
	case reflect.Struct:
		return decodeSection(v, n, path)
	default:
		return fmt.Errorf("%s: cannot be configured (internal: no decoder for it)", path)
	}
	return nil
}

// scalar returns n's text, or an error saying what the setting expects.
func scalar(n *yaml.Node, path, want string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: expects %s, not %s", path, want, kindName(n))
	}
	return n.Value, nil
}

// kindName says what a node is, in YAML's words.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section (key: value lines or {...})"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// decodeList replaces a list. A list of single values may also be written
// as one comma-separated value ("a:9092,b:9092").
func decodeList(v reflect.Value, n *yaml.Node, path string) error {
	elem := v.Type().Elem()
	var items []*yaml.Node
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case n.Kind == yaml.ScalarNode && isSingleValue(elem):
		for _, part := range strings.Split(n.Value, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part})
			}
		}
	default:
		return fmt.Errorf("%s: expects a list%s, not %s", path, example(path), kindName(n))
	}
	out := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		if err := decodeNode(out.Index(i), item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	v.Set(out)
	return nil
}

// decodeMap replaces a map of names to single values.
func decodeMap(v reflect.Value, n *yaml.Node, path string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: expects a section of name: value pairs%s, not %s", path, example(path), kindName(n))
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		val := reflect.New(v.Type().Elem()).Elem()
		if err := decodeNode(val, n.Content[i+1], path+"."+key); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), val)
	}
	v.Set(out)
	return nil
}

// decodeSection sets the settings a section names; an unknown one is an
// error naming the nearest known one.
func decodeSection(v reflect.Value, n *yaml.Node, path string) error {
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "the top level"
		}
		return fmt.Errorf("%s: expects a section of settings (key: value)%s, not %s", where, example(path), kindName(n))
	}
	fields := sectionFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		if key == "<<" { // a YAML merge key: its mapping's settings, then these
			if err := decodeNode(v, n.Content[i+1], path); err != nil {
				return err
			}
			continue
		}
		full := join(path, key)
		idx, ok := fields[key]
		if !ok {
			names := make([]string, 0, len(fields))
			for name := range fields {
				names = append(names, name)
			}
			msg := fmt.Sprintf("line %d: %s is not a setting", n.Content[i].Line, full)
			if near := nearest(key, names); near != "" {
				msg += fmt.Sprintf("; did you mean %s?", join(path, near))
			}
			return fmt.Errorf("%s", msg)
		}
		if seen[key] {
			return fmt.Errorf("line %d: %s is set twice", n.Content[i].Line, full)
		}
		seen[key] = true
		if err := decodeNode(v.FieldByIndex(idx), n.Content[i+1], full); err != nil {
			return err
		}
	}
	return nil
}

// sectionFields maps a struct's yaml names to its fields; fields tagged "-"
// or untagged are not settings.
func sectionFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out[name] = f.Index
	}
	return out
}

// isSingleValue reports whether t is set by one scalar.
func isSingleValue(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func join(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	}
	return path + "." + key
}

// examples are what a structured setting looks like, for its errors.
var examples = map[string]string{
	"auth.tokens":         "[{principal: loader, token: {env: LOADER_TOKEN}}]",
	"auth.users":          "[{username: ann, password_bcrypt: {file: /run/secrets/ann.bcrypt}}]",
	"auth.principals":     `[{name: loader, topics: ["orders.*"], delivery: [exactly_once], max_streams: 8}]`,
	"auth.session_keys":   "[{env: SESSION_KEY}]",
	"kafka.brokers":       "[kafka-0:9092, kafka-1:9092] or kafka-0:9092,kafka-1:9092",
	"kafka.client_config": `{"linger.ms": "10", "client.rack": "eu-west-1a"}`,
}

// example is " such as X" for a setting with an example, else "".
func example(path string) string {
	// auth.tokens[0] → auth.tokens
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	if e, ok := examples[path]; ok {
		return " such as " + e
	}
	return ""
}

// nearest returns the candidate closest to s (edit distance, case
// insensitive; "" when there are none).
func nearest(s string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
