package flightsink

import (
	"reflect"
	"strings"
)

// DescriptorKeys are the CMD descriptor's keys, from the struct that parses
// it, for the clients' option-list tests.
func DescriptorKeys() []string {
	t := reflect.TypeOf(rawDescriptor{})
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}
