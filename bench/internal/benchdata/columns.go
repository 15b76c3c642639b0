package benchdata

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ColumnsDataset names the dataset of n columns (the columns curve):
// "columns<n>".
func ColumnsDataset(n int) string { return "columns" + strconv.Itoa(n) }

// columns is the dataset of n columns (n ≥ 3): the wide dataset's id, user
// and ts, then its other 37 columns in turn (renamed <name>_<pass> after
// the first pass) until there are n. Rows grow with n, column by column,
// in the wide dataset's mix of types.
type columns struct {
	w   *wide
	sch *arrow.Schema
	src []int // the wide column each column is
}

func newColumns(name string) (*columns, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "columns"))
	if err != nil || n < 3 {
		return nil, fmt.Errorf("unknown dataset %q (want narrow, wide or columns<n>, n ≥ 3)", name)
	}
	g := &columns{w: newWide()}
	wf := g.w.sch.Fields()
	var fields []arrow.Field
	for i := 0; len(fields) < n; i++ {
		s := i
		if i >= len(wf) {
			s = 3 + (i-3)%(len(wf)-3)
		}
		f := wf[s]
		if i >= len(wf) {
			f.Name = fmt.Sprintf("%s_%d", f.Name, 1+(i-3)/(len(wf)-3))
		}
		fields = append(fields, f)
		g.src = append(g.src, s)
	}
	g.sch = arrow.NewSchema(fields, nil)
	return g, nil
}

func (g *columns) schema() *arrow.Schema { return g.sch }

func (g *columns) batch(r *rand.Rand, first int64, n int) arrow.RecordBatch {
	rec := g.w.batch(r, first, n)
	defer rec.Release()
	cols := make([]arrow.Array, len(g.src))
	for i, s := range g.src {
		cols[i] = rec.Column(s)
	}
	return array.NewRecordBatch(g.sch, cols, int64(n)) // retains the columns it shares
}
