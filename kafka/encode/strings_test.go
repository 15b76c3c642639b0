package encode

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// stdJSONString is encoding/json's text for s with HTML escaping off.
func stdJSONString(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// checkString verifies appendString against encoding/json byte for byte
// and checks the output decodes back to s (with invalid UTF-8 replaced).
func checkString(t testing.TB, s string) {
	t.Helper()
	got := appendString([]byte("x"), s)[1:]
	if want := stdJSONString(t, s); string(got) != want {
		t.Fatalf("appendString(%q)\n got %s\nwant %s", s, got, want)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("appendString(%q) = %s: %v", s, got, err)
	}
	if utf8.ValidString(s) && back != s {
		t.Fatalf("appendString(%q) round-trips to %q", s, back)
	}
}

func TestAppendStringExact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain ascii text", `"plain ascii text"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"/", `"/"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x0b\x1b\x1f", `"\u0000\u0001\u000b\u001b\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<script>&amp;</script>", `"<script>&amp;</script>"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"x\u2027\u202ay", "\"x\u2027\u202ay\""},
		{"héllo wörld", `"héllo wörld"`},
		{"😀", `"😀"`},
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // UTF-16 surrogate encoded in UTF-8
		{"\xf4\x90\x80\x80", `"\ufffd\ufffd\ufffd\ufffd"`},
		{"\xef\xbf\xbd", "\"\uFFFD\""}, // a real U+FFFD passes through
		{"12345678\"12345678\\", `"12345678\"12345678\\"`},
		{"1234567\n", `"1234567\n"`},
		{"12345678\n", `"12345678\n"`},
		{"1234567é", `"1234567é"`},
	} {
		if got := appendString(nil, tc.in); string(got) != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		checkString(t, tc.in)
	}
}

// TestAppendStringRandom cross-checks random strings made of runs of safe
// bytes, escapes, multi-byte runes and invalid bytes.
func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"a", "hello world ", "0123456789abcdef", `"`, `\`, "\n", "\t", "\x00", "\x1f", "\x7f",
		"é", "日本", "😀", "\u2028", "\u2029", "\xff", "\xe6\x97", "\xc0\x80", "<", ">", "&", "\ufffd"}
	for range 50_000 {
		var b []byte
		for range r.IntN(12) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		checkString(t, string(b))
	}
	// Raw random bytes.
	for range 50_000 {
		b := make([]byte, r.IntN(40))
		for k := range b {
			b[k] = byte(r.Uint32())
		}
		checkString(t, string(b))
	}
}

func TestNeedsEscape8(t *testing.T) {
	for b := range 256 {
		want := b < 0x20 || b == '"' || b == '\\' || b >= 0x80
		for pos := range 8 {
			x := uint64(0x6161616161616161) // "aaaaaaaa"
			x = x&^(0xff<<(8*pos)) | uint64(b)<<(8*pos)
			if got := needsEscape8(x); got != want {
				t.Fatalf("byte %#x at %d: got %v, want %v", b, pos, got, want)
			}
		}
	}
}
