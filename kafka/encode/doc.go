// Package encode turns rows of Arrow record batches into Kafka record parts:
// JSON values ([JSON], with Kafka Connect's schema envelope from
// [ConnectSchema] or a JSON Schema from [JSONSchema]), Avro values ([Avro],
// with their schema from [AvroSchema]), protobuf values ([Protobuf], which
// derives its .proto), keys and raw values ([Key]), bare column values for
// keys with a schema ([JSONValue], [NewAvroValue]) and timestamps
// ([Timestamp]).
//
// Everything here sits on the per-row hot path, so the work is split in
// three phases. Encoders are built once per stream from the schema (type
// dispatch and error checking happen here, and constant bytes such as the
// JSON key prefixes are precomputed). They are bound once per record batch
// to the batch's typed column buffers. Rows are then appended into a
// caller-supplied []byte without reflection, maps, boxing or allocation.
//
// Encoders are stateful and not safe for concurrent use; build one per
// stream (or per goroutine). They do not retain the batch they are bound
// to, so the caller must keep it alive while appending its rows.
package encode
