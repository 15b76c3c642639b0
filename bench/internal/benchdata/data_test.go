package benchdata

import (
	"testing"
)

func TestEnsureAndLoad(t *testing.T) {
	dir := t.TempDir()
	for _, name := range Datasets {
		path, meta, err := Ensure(dir, name, 2_500, 1_000)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if meta.Rows != 2_500 || meta.Batches != 3 || meta.ValueBytes == 0 || meta.KeyBytes == 0 {
			t.Fatalf("%s: meta %+v", name, meta)
		}
		if name == "wide" && meta.Columns != 40 {
			t.Fatalf("wide has %d columns, want 40", meta.Columns)
		}
		schema, batches, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		for _, b := range batches {
			if !b.Schema().Equal(schema) {
				t.Fatal("batch schema differs")
			}
			rows += b.NumRows()
			b.Release()
		}
		if rows != meta.Rows {
			t.Fatalf("%s: read %d rows, want %d", name, rows, meta.Rows)
		}
		// a second Ensure reuses the file
		if _, again, err := Ensure(dir, name, 2_500, 1_000); err != nil || again != meta {
			t.Fatalf("%s: second Ensure: %v %+v", name, err, again)
		}
	}
}

// TestColumnsDatasets: columns<n> has n columns, the key and timestamp
// among them, repeated columns renamed, and flightsink's encoder takes it.
func TestColumnsDatasets(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{5, 40, 41, 200} {
		path, meta, err := Ensure(dir, ColumnsDataset(n), 300, 100)
		if err != nil {
			t.Fatalf("columns %d: %v", n, err)
		}
		if meta.Columns != n || meta.Rows != 300 || meta.ValueBytes == 0 {
			t.Fatalf("columns %d: meta %+v", n, meta)
		}
		schema, batches, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, f := range schema.Fields() {
			if seen[f.Name] {
				t.Fatalf("columns %d: column %q twice", n, f.Name)
			}
			seen[f.Name] = true
		}
		if !seen[KeyField] || !seen[TimestampField] {
			t.Fatalf("columns %d: no %s or %s column: %v", n, KeyField, TimestampField, schema)
		}
		for _, b := range batches {
			b.Release()
		}
	}
	if _, _, err := Ensure(dir, "columns2", 10, 10); err == nil {
		t.Fatal("columns2 accepted")
	}
}

// TestQuantile: nearest rank, as the small and many streams report p50
// and p99.
func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct{ q, want float64 }{{0.5, 5}, {0.99, 10}, {1, 10}, {0, 1}, {0.1, 1}, {0.11, 2}} {
		if got := Quantile(xs, c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if Quantile(nil, 0.5) != 0 {
		t.Error("Quantile of nothing is not 0")
	}
}
