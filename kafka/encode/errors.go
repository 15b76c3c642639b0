package encode

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// FieldError names the column (dotted path for nested fields, e.g. "s.u")
// that cannot be handled and why. It is returned when a stream starts so
// that an unsupported schema is rejected before any row is produced.
type FieldError struct {
	Field  string // column name, or dotted path for nested fields
	Reason string // what is wrong, e.g. "unsupported type union (...)"
}

// Error formats the error as `column "x": reason`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("column %q: %s", e.Field, e.Reason)
}

// unsupported returns the FieldError for a column of a type that cannot be
// encoded, grouping type families under one friendly name.
func unsupported(path string, dt arrow.DataType) *FieldError {
	kind := dt.Name()
	switch dt.ID() {
	case arrow.SPARSE_UNION, arrow.DENSE_UNION:
		kind = "union"
	case arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO:
		kind = "interval"
	case arrow.EXTENSION:
		kind = "extension"
	}
	return &FieldError{Field: path, Reason: fmt.Sprintf("unsupported type %s (%s)", kind, dt)}
}

// joinPath returns the dotted path of child name under parent.
func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
