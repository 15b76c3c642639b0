package encode

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkProtobuf encodes the narrow benchmark batch (see bench_test.go)
// as protobuf messages.
func BenchmarkProtobuf(b *testing.B) {
	rec := narrowBatch()
	enc, err := NewProtobuf(rec.Schema(), "bench", "Narrow")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 16<<20) // room for the whole batch: measure encoding only
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Bind(rec); err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		for i := range benchRows {
			buf = enc.AppendRow(buf, i)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}

// BenchmarkProtobufLibrary has google.golang.org/protobuf marshal the same
// rows as dynamicpb messages of the derived descriptor, built beforehand
// (the conversion from Arrow is not timed), into one reused buffer. The
// bytes are checked to equal BenchmarkProtobuf's.
func BenchmarkProtobufLibrary(b *testing.B) {
	rec := narrowBatch()
	enc, err := NewProtobuf(rec.Schema(), "bench", "Narrow")
	if err != nil {
		b.Fatal(err)
	}
	md := enc.Descriptor()
	f := md.Fields()
	ids := rec.Column(0).(*array.Int64)
	users := rec.Column(1).(*array.String)
	tss := rec.Column(2).(*array.Timestamp)
	amounts := rec.Column(3).(*array.Float64)
	cats := rec.Column(4).(*array.Dictionary)
	catVals := cats.Dictionary().(*array.String)
	msgs := make([]*dynamicpb.Message, benchRows)
	for i := range msgs {
		m := dynamicpb.NewMessage(md)
		m.Set(f.ByName("id"), protoreflect.ValueOfInt64(ids.Value(i)))
		if users.IsValid(i) {
			m.Set(f.ByName("user"), protoreflect.ValueOfString(users.Value(i)))
		}
		us := int64(tss.Value(i))
		ts := timestamppb.Timestamp{Seconds: us / 1_000_000, Nanos: int32(us%1_000_000) * 1000}
		tm := dynamicpb.NewMessage(f.ByName("ts").Message())
		tm.Set(tm.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(ts.Seconds))
		if ts.Nanos != 0 {
			tm.Set(tm.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(ts.Nanos))
		}
		m.Set(f.ByName("ts"), protoreflect.ValueOfMessage(tm))
		if amounts.IsValid(i) {
			m.Set(f.ByName("amount"), protoreflect.ValueOfFloat64(amounts.Value(i)))
		}
		m.Set(f.ByName("category"), protoreflect.ValueOfString(catVals.Value(cats.GetValueIndex(i))))
		msgs[i] = m
	}
	if err := enc.Bind(rec); err != nil {
		b.Fatal(err)
	}
	for i := range benchRows {
		ours := enc.AppendRow(nil, i)
		theirs, err := proto.MarshalOptions{Deterministic: true}.Marshal(msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			b.Fatalf("row %d: the library writes % x, Protobuf % x", i, theirs, ours)
		}
	}
	buf := make([]byte, 0, 16<<20)
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for _, m := range msgs {
			if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}
