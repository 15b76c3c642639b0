package kafka

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// floorFunc returns a lower bound of the bytes elements [a, b) of an array
// encode to, counting no further once the bound passes limit (so a check
// costs at most about limit steps, whatever the array).
type floorFunc func(a, b int, limit int64) int64

// valueFloor is a lower bound of what one row's record encodes to, from
// the parts of a batch whose size costs the client nothing on the wire:
// every element of a list (list, large list, list view, fixed-size list,
// map) encodes to at least a byte, and a view (string_view, binary_view)
// to at least its length, though a few bytes of buffers can repeat either
// without end. A row whose floor is over its topic's max.message.bytes is
// refused before it is encoded, so no single row expands past that.
// Columns without lists or views cost nothing here.
type valueFloor struct{ cols []floorFunc }

// bindFloor builds the floor of the batch's columns that go into a record
// (value, key, headers; nil when none has a list or a view).
func bindFloor(rec arrow.RecordBatch, cols []int) *valueFloor {
	var f valueFloor
	for _, c := range cols {
		if fn := arrayFloor(rec.Column(c)); fn != nil {
			f.cols = append(f.cols, fn)
		}
	}
	if len(f.cols) == 0 {
		return nil
	}
	return &f
}

// row is the floor of row i, counted up to just past limit.
func (f *valueFloor) row(i int, limit int64) int64 {
	var n int64
	for _, fn := range f.cols {
		if n += fn(i, i+1, limit-n); n > limit {
			break
		}
	}
	return n
}

// arrayFloor builds the floor of arr's elements, nil when it is 0.
func arrayFloor(arr arrow.Array) floorFunc {
	switch a := arr.(type) {
	case *array.StringView:
		return viewFloor(a.ValueLen)
	case *array.BinaryView:
		return viewFloor(a.ValueLen)
	case *array.ListView:
		return listViewFloor(a)
	case *array.LargeListView:
		return listViewFloor(a)
	case array.ListLike: // list, large list, fixed-size list, map: contiguous children
		child := arrayFloor(a.ListValues())
		return func(x, y int, limit int64) int64 {
			if x >= y {
				return 0
			}
			start, _ := a.ValueOffsets(x)
			_, end := a.ValueOffsets(y - 1)
			n := end - start
			if child != nil && n <= limit {
				n += child(int(start), int(end), limit-n)
			}
			return n
		}
	case *array.Struct:
		var fields []floorFunc
		for j := 0; j < a.NumField(); j++ {
			if fn := arrayFloor(a.Field(j)); fn != nil {
				fields = append(fields, fn)
			}
		}
		if len(fields) == 0 {
			return nil
		}
		return func(x, y int, limit int64) int64 {
			var n int64
			for _, fn := range fields {
				if n += fn(x, y, limit-n); n > limit {
					break
				}
			}
			return n
		}
	case *array.Dictionary:
		values := arrayFloor(a.Dictionary())
		if values == nil {
			return nil
		}
		return func(x, y int, limit int64) int64 {
			var n int64
			for i := x; i < y && n <= limit; i++ {
				if a.IsValid(i) {
					idx := a.GetValueIndex(i)
					n += values(idx, idx+1, limit-n)
				}
			}
			return n
		}
	case *array.RunEndEncoded:
		values := arrayFloor(a.Values())
		if values == nil {
			return nil
		}
		return func(x, y int, limit int64) int64 {
			var n int64
			for i := x; i < y && n <= limit; i++ {
				p := a.GetPhysicalIndex(i)
				n += values(p, p+1, limit-n)
			}
			return n
		}
	}
	return nil
}

func viewFloor(valueLen func(int) int) floorFunc {
	return func(x, y int, limit int64) int64 {
		var n int64
		for i := x; i < y && n <= limit; i++ {
			n += int64(valueLen(i))
		}
		return n
	}
}

// listViewFloor: a list view's elements may point anywhere in its child,
// and at the same child values again and again.
func listViewFloor(a interface {
	array.ListLike
	IsValid(int) bool
}) floorFunc {
	child := arrayFloor(a.ListValues())
	return func(x, y int, limit int64) int64 {
		var n int64
		for i := x; i < y && n <= limit; i++ {
			if !a.IsValid(i) {
				continue
			}
			start, end := a.ValueOffsets(i)
			n += end - start
			if child != nil && n <= limit {
				n += child(int(start), int(end), limit-n)
			}
		}
		return n
	}
}
