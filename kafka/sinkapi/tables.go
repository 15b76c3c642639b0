package sinkapi

import "time"

// Table is a declared table: a topic with the Arrow schema its rows have
// and the record options they are written with. Declarations are kept in
// the server's compacted tables topic (kafka.tables_topic), keyed by the
// topic, so every replica sees them and a restart keeps them.
type Table struct {
	// Topic is the table's name and its topic.
	Topic string `json:"topic"`
	// Schema is the table's Arrow schema, serialized as an IPC schema
	// message (flight.SerializeSchema): it keeps every Arrow type exactly.
	Schema []byte `json:"schema"`
	// Options are the record options of its rows: key_field,
	// timestamp_field, format.
	Options map[string]string `json:"options,omitempty"`
	// SQL is the statement that declared it, for people reading the topic.
	SQL string `json:"sql,omitempty"`
	// DeclaredBy is the principal that declared it; DeclaredAt when.
	DeclaredBy string    `json:"declared_by,omitempty"`
	DeclaredAt time.Time `json:"declared_at"`
	// Subject is set on a table that no statement declared: the schema
	// registry subject (<topic>-value, Avro) whose latest version gives
	// its columns; rows are written in that schema, registering nothing.
	Subject string `json:"subject,omitempty"`
}
