package flightsink_test

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/protocol.md's table of reasons from flightsink.Reasons")

// reasonTable renders flightsink.Reasons as docs/protocol.md shows it.
func reasonTable() string {
	var b strings.Builder
	b.WriteString("| reason | code | retryable | meaning | what to do |\n|---|---|---|---|---|\n")
	for _, ri := range flightsink.Reasons {
		var cs []string
		for _, c := range ri.Codes {
			cs = append(cs, c.String())
		}
		retry := "no"
		if ri.Retryable {
			retry = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", ri.Reason, strings.Join(cs, ", "), retry, ri.Meaning, ri.Action)
	}
	return b.String()
}

// TestReasonTable: flightsink.Reasons is the one table of reasons. Every
// Reason constant of the package has its row; docs/protocol.md shows the
// table as it is (go test -run TestReasonTable -update-docs rewrites it);
// the Python and Go clients retry exactly the reasons it calls retryable.
func TestReasonTable(t *testing.T) {
	inTable := map[flightsink.Reason]bool{}
	for _, ri := range flightsink.Reasons {
		if inTable[ri.Reason] {
			t.Errorf("reason %q has two rows", ri.Reason)
		}
		inTable[ri.Reason] = true
		if len(ri.Codes) == 0 || ri.Meaning == "" || ri.Action == "" {
			t.Errorf("reason %q: codes, meaning and action are required: %+v", ri.Reason, ri)
		}
	}
	for name, value := range reasonConstants(t) {
		if !inTable[flightsink.Reason(value)] {
			t.Errorf("%s = %q is not in flightsink.Reasons: add its row", name, value)
		}
	}

	// docs/protocol.md
	path := filepath.Join("..", "docs", "protocol.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := string(raw)
	start := strings.Index(docs, "\n| reason |")
	if start < 0 {
		t.Fatalf("%s has no table starting with \"| reason |\"", path)
	}
	start++
	end := start
	for end < len(docs) && docs[end] == '|' {
		end += strings.IndexByte(docs[end:], '\n') + 1
	}
	want := reasonTable()
	if got := docs[start:end]; got != want {
		if *updateDocs {
			if err := os.WriteFile(path, []byte(docs[:start]+want+docs[end:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the table of reasons in %s", path)
		} else {
			t.Errorf("%s's table of reasons differs from flightsink.Reasons; run go test ./flightsink -run TestReasonTable -update-docs\n--- docs\n%s--- want\n%s", path, got, want)
		}
	}

	// Both clients' retryable sets.
	var retryable []string
	for _, ri := range flightsink.Reasons {
		if ri.Retryable {
			retryable = append(retryable, string(ri.Reason))
		}
		e := &client.Error{Code: ri.Codes[0], Reason: string(ri.Reason)}
		if e.Retryable() != ri.Retryable {
			t.Errorf("Go client: (*Error).Retryable() is %v for %s; the table says %v", e.Retryable(), ri.Reason, ri.Retryable)
		}
	}
	sort.Strings(retryable)
	pyPath := filepath.Join("..", "clients", "python", "src", "flightsink", "_errors.py")
	py, err := os.ReadFile(pyPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)RETRYABLE_REASONS = frozenset\(\{(.*?)\}\)`).FindSubmatch(py)
	if m == nil {
		t.Fatalf("%s: no RETRYABLE_REASONS = frozenset({...})", pyPath)
	}
	var pySet []string
	for _, q := range regexp.MustCompile(`"[^"]*"`).FindAll(m[1], -1) {
		pySet = append(pySet, strings.Trim(string(q), `"`))
	}
	sort.Strings(pySet)
	if !slices.Equal(pySet, retryable) {
		t.Errorf("%s: RETRYABLE_REASONS is %v; the table's retryable reasons are %v", pyPath, pySet, retryable)
	}
}

// reasonConstants finds every constant of type Reason in the package's
// source: name → value.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for i, name := range vs.Names {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
						out[name.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d Reason constants: %v", len(out), out)
	}
	return out
}

// callResult is the status and reason trailer of a failed RPC.
type callResult struct {
	code    codes.Code
	reason  string
	message string
}

func (c callResult) String() string { return fmt.Sprintf("%v %q: %s", c.code, c.reason, c.message) }

func statusAndReason(err error, trailer metadata.MD) callResult {
	st := status.Convert(err)
	r := callResult{code: st.Code(), message: st.Message()}
	if v := trailer.Get(flightsink.TrailerReason); len(v) == 1 {
		r.reason = v[0]
	}
	return r
}

// doAction runs an action to its end and returns how it failed.
func (e *testEnv) doAction(t *testing.T, typ string, body []byte) callResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := e.client.DoAction(ctx, &flight.Action{Type: typ, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return statusAndReason(err, stream.Trailer())
		}
	}
}

// TestEveryRPCHasReason: the errors of every RPC, not only DoPut, carry the
// flightsink-reason trailer, and their code is the table's for that reason:
// DoAction, Flight SQL calls, unserved Flight methods, the handshake and
// the authenticator's refusals.
func TestEveryRPCHasReason(t *testing.T) {
	env := startServerWith(t, authOptions(t), nil)
	loader := env.as(t, loaderToken, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	check := func(what string, got callResult, code codes.Code, reason flightsink.Reason) {
		t.Helper()
		if got.code != code || got.reason != string(reason) {
			t.Errorf("%s: got %v; want %v %q", what, got, code, reason)
		}
	}
	var trailer metadata.MD
	check("unknown action", loader.doAction(t, "no-such-action", nil), codes.Unimplemented, flightsink.ReasonUnimplemented)
	check("writer-status with a bad body", loader.doAction(t, flightsink.ActionWriterStatus, []byte("{")), codes.InvalidArgument, flightsink.ReasonBadRequest)

	_, err := loader.client.GetFlightInfo(ctx, sqlQuery(t, "SELECT 1"), grpc.Trailer(&trailer))
	check("Flight SQL query", statusAndReason(err, trailer), codes.Unimplemented, flightsink.ReasonUnimplemented)

	list, err := loader.client.ListFlights(ctx, &flight.Criteria{})
	if err == nil {
		_, err = list.Recv()
	}
	check("ListFlights", statusAndReason(err, list.Trailer()), codes.Unimplemented, flightsink.ReasonUnimplemented)

	trailer = nil
	_, err = env.client.GetFlightInfo(ctx, sqlQuery(t, "SELECT 1"), grpc.Trailer(&trailer))
	check("no credentials (unary)", statusAndReason(err, trailer), codes.Unauthenticated, flightsink.ReasonUnauthenticated)
	res := env.put(t, pathDesc("TestAuth-x"), simpleSchema)
	check("no credentials (DoPut)", callResult{res.code, res.reason, res.message}, codes.Unauthenticated, flightsink.ReasonUnauthenticated)

	hctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:wrong")))
	hs, err := env.client.Handshake(hctx)
	if err == nil {
		_ = hs.CloseSend()
		_, err = hs.Recv()
	}
	check("handshake with a wrong password", statusAndReason(err, hs.Trailer()), codes.Unauthenticated, flightsink.ReasonUnauthenticated)
}

// sqlQuery is the descriptor of a Flight SQL query (which flightsink does
// not run).
func sqlQuery(t *testing.T, q string) *flight.FlightDescriptor {
	t.Helper()
	cmd, err := anypb.New(&pb.CommandStatementQuery{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: b}
}

// TestLongClientTextIsBounded: client-supplied text echoed in a status (an
// unknown descriptor key, a delivery value, an abort reason, a writer id, an
// action type, a column name) is cut to valid UTF-8 with its length noted,
// and every status message stays well under gRPC's 8 KiB metadata limit, so
// the client gets the real status, code and reason intact.
func TestLongClientTextIsBounded(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	const size = 100 << 10
	long := strings.Repeat("k", size)
	wide := strings.Repeat("é", size/2) // two bytes each: cuts must not split one

	// A column of a type flightsink cannot write, named by 100 KB.
	bigColumn := arrow.NewSchema([]arrow.Field{{Name: strings.Repeat("c", size),
		Type: arrow.SparseUnionOf([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{0})}}, nil)

	check := func(what string, got callResult, code codes.Code, reason flightsink.Reason, fragments ...string) {
		t.Helper()
		if got.code != code || got.reason != string(reason) {
			t.Errorf("%s: got %v %q (message %d bytes); want %v %q", what, got.code, got.reason, len(got.message), code, reason)
			return
		}
		if len(got.message) > 2048 || !utf8.ValidString(got.message) {
			t.Errorf("%s: message of %d bytes (valid UTF-8: %v); want valid UTF-8 of at most 2048 bytes", what, len(got.message), utf8.ValidString(got.message))
		}
		for _, f := range fragments {
			if !strings.Contains(got.message, f) {
				t.Errorf("%s: message %q does not mention %q", what, got.message, f)
			}
		}
		t.Logf("%s: %d bytes: %.200s", what, len(got.message), got.message)
	}
	put := func(desc *flight.FlightDescriptor, schema *arrow.Schema, steps ...step) callResult {
		res := env.put(t, desc, schema, steps...)
		return callResult{res.code, res.reason, res.message}
	}
	check("100 KB unknown descriptor key", put(rawCmd(`{"topic":"`+topic+`","`+long+`":1}`), simpleSchema),
		codes.InvalidArgument, flightsink.ReasonBadDescriptor, `unknown key "kkkk`, fmt.Sprintf("cut from %d bytes", size), "durable_checkpoint=0")
	check("100 KB delivery value", put(cmdDesc(map[string]any{"topic": topic, "delivery": wide}), simpleSchema),
		codes.InvalidArgument, flightsink.ReasonBadDescriptor, `key "delivery": "éé`, fmt.Sprintf("cut from %d bytes", size))
	check("100 KB abort reason", put(pathDesc(topic), simpleSchema, metaOnly(`{"abort":"`+long+`"}`)),
		codes.Aborted, flightsink.ReasonClientAbort, `client aborted the stream: "kkkk`, fmt.Sprintf("cut from %d bytes", size))
	check("100 KB multi-byte abort reason", put(pathDesc(topic), simpleSchema, metaOnly(`{"abort":"`+wide+`"}`)),
		codes.Aborted, flightsink.ReasonClientAbort, `"éé`, fmt.Sprintf("cut from %d bytes", size))
	check("100 KB marker key", put(pathDesc(topic), simpleSchema, metaOnly(`{"`+long+`":1}`)),
		codes.InvalidArgument, flightsink.ReasonBadMetadata, `unknown key "kkkk`)
	check("100 KB key_field naming no column", put(cmdDesc(map[string]any{"topic": topic, "key_field": long}), simpleSchema),
		codes.InvalidArgument, flightsink.ReasonBadSchema, "cut from", "[durable_checkpoint=0 durable_rows=0]")
	check("100 KB column name", put(pathDesc(topic), bigColumn),
		codes.InvalidArgument, flightsink.ReasonBadSchema, `column "cccc`, "[durable_checkpoint=0 durable_rows=0]")
	check("100 KB writer id in writer-status", env.doAction(t, flightsink.ActionWriterStatus, []byte(`{"writer_id":"`+long+`"}`)),
		codes.InvalidArgument, flightsink.ReasonBadRequest, fmt.Sprintf("cut from %d bytes", size))
	check("100 KB action type", env.doAction(t, long, nil),
		codes.Unimplemented, flightsink.ReasonUnimplemented, fmt.Sprintf("cut from %d bytes", size))
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 0 {
		t.Errorf("%d records written; want none", n)
	}
}
