package kafka

import (
	"fmt"
)

func optionError(msg string) *OptionError { return &OptionError{Msg: msg} }

// schemaError names the option at fault ("" for the value's columns).
func schemaError(key string, err error) *SchemaError {
	msg := "unsupported schema: " + err.Error()
	if key != "" {
		msg = fmt.Sprintf("invalid descriptor key %q: %v", key, err)
	}
	return &SchemaError{Msg: msg, Err: err}
}
