package put

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// keySet is the object keys a schema has columns for; a key's own keySet
// is set for struct columns (and lists of structs), nil for the others.
type keySet map[string]keySet

func keysOf(fields []arrow.Field) keySet {
	ks := keySet{}
	for _, f := range fields {
		ks[f.Name] = nestedKeys(f.Type)
	}
	return ks
}

func nestedKeys(t arrow.DataType) keySet {
	switch t := t.(type) {
	case *arrow.StructType:
		return keysOf(t.Fields())
	case arrow.ListLikeType:
		return nestedKeys(t.Elem())
	}
	return nil
}

// unknownKeyError is a JSON line with keys the schema has no column for.
type unknownKeyError struct {
	line int
	keys []string
	why  string
}

func (e *unknownKeyError) Error() string {
	return fmt.Sprintf("line %d has %s %s, which the schema has no column for (%s); pass --schema to choose the columns, "+
		"or --infer-rows to sample more lines", e.line, plural(len(e.keys), "key", "keys"), strings.Join(e.keys, ", "), e.why)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// jsonKeyCheck passes JSON lines through unchanged and keeps the error
// that ended them: arrow-go's JSON reader takes any error of its input for
// its end (failure says what it was). With keys, it fails at the first line
// with a key the schema has no column for, which that reader would drop
// without a word.
type jsonKeyCheck struct {
	r       *bufio.Reader
	keys    keySet
	why     string // where the schema came from, for the error
	line    int
	pending []byte
	err     error
}

// newJSONKeyCheck checks the keys of r's lines against schema when check
// is set.
func newJSONKeyCheck(r io.Reader, schema *arrow.Schema, why string, check bool) *jsonKeyCheck {
	c := &jsonKeyCheck{r: bufio.NewReaderSize(r, 1<<16), why: why}
	if check {
		c.keys = keysOf(schema.Fields())
	}
	return c
}

// failure is the error that ended the input, nil at its end.
func (c *jsonKeyCheck) failure() error {
	if errors.Is(c.err, io.EOF) {
		return nil
	}
	return c.err
}

func (c *jsonKeyCheck) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		line, err := c.r.ReadBytes('\n')
		c.err = err
		if len(line) == 0 {
			continue
		}
		c.line++
		if c.keys == nil {
			c.pending = line
			break
		}
		if unknown := c.keys.unknown(bytes.TrimSpace(line), ""); len(unknown) > 0 {
			sort.Strings(unknown)
			c.err = &unknownKeyError{line: c.line, keys: unknown, why: c.why}
			return 0, c.err
		}
		c.pending = line
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// unknown lists the keys of the object in raw (at path) that ks has no
// column for, at any depth; what is not an object is left to the reader.
func (ks keySet) unknown(raw []byte, path string) []string {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	var out []string
	for k, v := range obj {
		sub, ok := ks[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%q", path+k))
		case sub != nil && len(v) > 0 && v[0] == '{':
			out = append(out, sub.unknown(v, path+k+".")...)
		case sub != nil && len(v) > 0 && v[0] == '[':
			var elems []json.RawMessage
			if json.Unmarshal(v, &elems) == nil {
				for _, e := range elems {
					out = append(out, sub.unknown(e, path+k+"[].")...)
				}
			}
		}
	}
	return out
}
