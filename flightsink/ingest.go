package flightsink

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// ingestState is what a Flight SQL bulk ingest adds to a stream: it sends
// no acks but one DoPutUpdateResult, and commits once at the end unless
// commit_every_rows asks for more (then it is not atomic).
type ingestState struct {
	commitEvery int64 // 0: one transaction for the whole ingest
	commits     int64
}

// ingestOptions are the descriptor settings an ingest may pass in the
// CommandStatementIngest options map or, because ADBC's Flight SQL driver
// sends adbc.flight.sql.rpc.call_header.<name> options as gRPC headers and
// no options map, as flightsink-<name> call headers.
var ingestOptions = []string{"key_field", "timestamp_field", "format", "delivery", "commit_every_rows"}

// ingestDescriptor turns a CommandStatementIngest into a Descriptor: the
// table is the topic (catalog and schema must be empty), settings come from
// the options map, then from call headers.
func (st *stream) ingestDescriptor(cmd *pb.CommandStatementIngest) (*Descriptor, error) {
	if cmd.GetCatalog() != "" || cmd.GetSchema() != "" {
		return nil, badDescriptor(fmt.Sprintf("ingest: catalog %q and schema %q must be empty: a topic is addressed by its name alone",
			clip(cmd.GetCatalog()), clip(cmd.GetSchema())))
	}
	if cmd.GetTemporary() {
		return nil, badDescriptor("ingest: temporary tables are not supported; a topic outlives the connection")
	}
	if cmd.TransactionId != nil {
		return nil, newError(codes.Unimplemented, ReasonUnimplemented, "ingest: Flight SQL transactions are not supported; each ingest is its own Kafka transaction")
	}
	if err := ValidateTopicName(cmd.GetTable()); err != nil {
		return nil, badDescriptor("ingest: table: " + err.Error())
	}
	if cmd.GetTableDefinitionOptions().GetIfExists() == pb.CommandStatementIngest_TableDefinitionOptions_TABLE_EXISTS_OPTION_REPLACE {
		return nil, badDescriptor(`ingest mode "replace": Kafka topics cannot be replaced; use "append" or "create_append"`)
	}
	values := map[string]string{}
	md, _ := metadata.FromIncomingContext(st.ctx)
	for _, key := range ingestOptions {
		if v := md.Get("flightsink-" + strings.ReplaceAll(key, "_", "-")); len(v) > 0 {
			values[key] = v[0]
		}
	}
	for k, v := range cmd.GetOptions() {
		known := false
		for _, key := range ingestOptions {
			known = known || k == key
		}
		if !known {
			if strings.HasPrefix(k, "adbc.") {
				continue // a driver's own option
			}
			return nil, badDescriptor(fmt.Sprintf("ingest option %q is unknown (known: %s)", clip(k), strings.Join(ingestOptions, ", ")))
		}
		values[k] = v
	}
	d := &Descriptor{Topic: cmd.GetTable(), Format: FormatJSON, CommitOnClose: true,
		KeyField: values["key_field"], TimestampField: values["timestamp_field"], Delivery: ExactlyOnce}
	if v, ok := values["format"]; ok && v != string(FormatJSON) {
		return nil, badDescriptor(fmt.Sprintf(`ingest option "format": %q is not supported (supported: "json")`, clip(v)))
	}
	if v, ok := values["delivery"]; ok {
		switch Delivery(v) {
		case AtLeastOnce, ExactlyOnce:
			d.Delivery = Delivery(v)
		default:
			return nil, badDescriptor(fmt.Sprintf(`ingest option "delivery": %q is not one of "at_least_once", "exactly_once"`, clip(v)))
		}
	}
	if v, ok := values["commit_every_rows"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, badDescriptor(fmt.Sprintf(`ingest option "commit_every_rows": %q must be an integer >= 1`, clip(v)))
		}
		st.ingest.commitEvery = n
	}
	return d, nil
}

// ingestTopic applies the ingest mode: append needs the topic; create
// makes it (when kafka.create_topics allows) and refuses an existing one;
// create_append makes it when missing.
func (st *stream) ingestTopic(cmd *pb.CommandStatementIngest) (sinkapi.TopicInfo, error) {
	sink := st.srv.sink
	opts := cmd.GetTableDefinitionOptions()
	create := opts.GetIfNotExist() == pb.CommandStatementIngest_TableDefinitionOptions_TABLE_NOT_EXIST_OPTION_CREATE
	failIfExists := opts.GetIfExists() == pb.CommandStatementIngest_TableDefinitionOptions_TABLE_EXISTS_OPTION_FAIL
	topic := cmd.GetTable()
	info, err := sink.Lookup(st.ctx, topic)
	switch {
	case err == nil && failIfExists:
		return info, newError(codes.AlreadyExists, ReasonTopicExists,
			`ingest mode "create": topic %q already exists; use "append" or "create_append" to write to it`, topic)
	case err == nil:
		return info, nil
	case !errors.Is(err, sinkapi.ErrTopicMissing):
		return info, err
	case !create:
		return info, fmt.Errorf(`%w: ingest mode "append": topic %q does not exist; use "create_append", or create it first`, sinkapi.ErrTopicMissing, topic)
	case !sink.CreateTopicsAllowed():
		return info, newError(codes.FailedPrecondition, ReasonTopicMissing,
			"ingest asks to create topic %q, but kafka.create_topics is off; create the topic first or turn the setting on", topic)
	}
	if err := sink.CreateTopic(st.ctx, topic); err != nil {
		return info, err
	}
	st.log.Info().Str("topic", topic).Msg("created topic for a Flight SQL ingest")
	return sink.Lookup(st.ctx, topic)
}

// policyCheckpoint is the checkpoint a stream makes after a batch without
// a marker: an ingest's intermediate commit when commit_every_rows is set
// and reached; 0 means none.
func (st *stream) policyCheckpoint() int64 {
	if st.ingest == nil || st.ingest.commitEvery == 0 || st.rows-st.ckpt.openSince() < st.ingest.commitEvery {
		return 0
	}
	st.ingest.commits++
	return st.ingest.commits
}

// ingestResult is the one PutResult a Flight SQL ingest answers with.
func (st *stream) ingestResult() []byte {
	b, _ := proto.Marshal(&pb.DoPutUpdateResult{RecordCount: st.ckpt.durableRows})
	return b
}

// checkTransactionLimits refuses a batch that would make the open
// transaction too large (kafka.max_transaction_rows) or, for an ingest
// committed once at the end, one that arrives when the transaction is close
// to kafka.transaction_timeout: both are ResourceExhausted naming the
// setting, before any row of the batch is produced.
func (st *stream) checkTransactionLimits(rows int64) error {
	if st.delivery != ExactlyOnce {
		return nil
	}
	cfg := st.srv.sink.Limits()
	open := st.rows - st.ckpt.openSince()
	if limit := cfg.MaxTransactionRows; limit > 0 && open+rows > limit {
		hint := "checkpoint more often"
		if st.ingest != nil {
			hint = `set the ingest option "commit_every_rows" (the ingest is then not atomic)`
		}
		return newError(codes.ResourceExhausted, ReasonTooLargeTxn,
			"the open transaction would hold %d rows, over kafka.max_transaction_rows (%d); %s", open+rows, limit, hint)
	}
	if st.txnStart.IsZero() {
		st.txnStart = time.Now()
	} else if st.ingest != nil && st.ingest.commitEvery == 0 {
		if elapsed := time.Since(st.txnStart); elapsed > cfg.TransactionTimeout*8/10 {
			return newError(codes.ResourceExhausted, ReasonTooLargeTxn,
				"the ingest has run %v in one transaction, close to kafka.transaction_timeout (%v) after which Kafka aborts it; "+
					`set the ingest option "commit_every_rows" (the ingest is then not atomic) or raise kafka.transaction_timeout`,
				elapsed.Round(time.Millisecond), cfg.TransactionTimeout)
		}
	}
	return nil
}
