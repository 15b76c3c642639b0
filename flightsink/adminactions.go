package flightsink

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// The admin actions: named writers (list, show, reset) and the server's
// open transactions (list, abort a lingering one). A principal sees and
// resets only its own writers and their transactions; one with
// auth.principals[].admin (and the anonymous principal of a server without
// auth) sees all.
const (
	// ActionWritersList lists named writers and their committed progress.
	ActionWritersList = "writers-list"
	// ActionWriterShow shows one named writer's committed progress.
	ActionWriterShow = "writer-show"
	// ActionWriterReset fences a named writer on every replica, then
	// forgets its progress.
	ActionWriterReset = "writer-reset"
	// ActionTransactionsList lists the open transactions of the server's
	// transactional ids, with their age and whether they linger.
	ActionTransactionsList = "transactions-list"
	// ActionTransactionAbort aborts a lingering transaction.
	ActionTransactionAbort = "transaction-abort"
)

var adminActions = []*flight.ActionType{
	{Type: ActionWritersList, Description: `Body {} or {"principal": "..."} (admin). Returns {"writers": [{"principal","writer_id","topic","last_checkpoint","committed_rows","committed_at"}]}: ` +
		`the caller's named writers (an admin's: every principal's).`},
	{Type: ActionWriterShow, Description: `Body {"writer_id": "...", "principal": "..." (admin, optional)}. Returns {"principal","writer_id","found","topic","last_checkpoint","committed_rows","committed_at"}. Does not fence the writer.`},
	{Type: ActionWriterReset, Description: `Body {"writer_id": "...", "principal": "..." (admin, optional)}. Fences the writer's streams on every replica, then forgets its progress: ` +
		`its next stream starts at checkpoint 1. Returns {"principal","writer_id","found","reset":true,"forgotten":{...}|null}.`},
	{Type: ActionTransactionsList, Description: `Body {}. Returns {"transactions": [{"transactional_id","kind","principal","writer_id","replica","state","producer_id","producer_epoch",` +
		`"started_at","age_ms","timeout_ms","partitions","lingering","live_on"}], "linger_after_ms"}: the open transactions of this server's transactional ids (a non-admin's: its writers').`},
	{Type: ActionTransactionAbort, Description: `Body {"transactional_id": "..."}. Aborts a lingering transaction (open longer than linger_after_ms, no live stream on any replica) ` +
		`with EndTxn as its own producer id and epoch; refuses any other (txn_not_abortable).`},
}

// mayAdminister reports whether p sees every principal's writers and
// transactions.
func (p *Principal) mayAdminister() bool { return p.anonymous || p.admin }

// scopeOf is a writer's key in the progress topic: principal-scoped, as
// Principal.scopedWriter names it; splitScoped is the reverse.
func scopeOf(principal, writer string) string {
	if principal == Anonymous.Name {
		return writer
	}
	return principal + ":" + writer
}

func splitScoped(key string) (principal, writer string) {
	if p, w, ok := strings.Cut(key, ":"); ok {
		return p, w
	}
	return Anonymous.Name, key
}

// decodeAction decodes an action's JSON body strictly (an empty body is
// {}); errors name the action.
func decodeAction(action string, body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(codes.InvalidArgument, ReasonBadRequest, "%s: invalid body: %s", action, clip(err.Error()))
	}
	return nil
}

// kafkaFailed names the action in a Kafka-side error.
func kafkaFailed(action string, err error) error {
	e := classify(err)
	return &Error{Code: e.Code, Reason: e.Reason, Msg: action + ": " + e.Msg, Err: err}
}

func sendJSON(stream flight.FlightService_DoActionServer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return stream.Send(&flight.Result{Body: b})
}

type writerRequest struct {
	WriterID  string `json:"writer_id"`
	Principal string `json:"principal"`
}

// writerTarget resolves a writer request to the writer's key, refusing
// another principal's writer unless the caller is an admin.
func writerTarget(ctx context.Context, action string, body []byte) (string, error) {
	var req writerRequest
	if err := decodeAction(action, body, &req); err != nil {
		return "", err
	}
	if !writerIDRE.MatchString(req.WriterID) {
		return "", newError(codes.InvalidArgument, ReasonBadRequest, `%s: key "writer_id": %q must be 1-200 characters of [A-Za-z0-9._-]`, action, clip(req.WriterID))
	}
	caller := PrincipalFromContext(ctx)
	owner := req.Principal
	if owner == "" {
		owner = caller.Name
	}
	if !sinkapi.ValidIDPart(owner) {
		return "", newError(codes.InvalidArgument, ReasonBadRequest, `%s: key "principal": %q is not a principal name`, action, clip(owner))
	}
	if owner != caller.Name && !caller.mayAdminister() {
		return "", newError(codes.PermissionDenied, ReasonForbidden, "%s: principal %q may not see or reset writer %q of principal %q (auth.principals[].admin)",
			action, caller.Name, req.WriterID, owner)
	}
	return scopeOf(owner, req.WriterID), nil
}

// writerJSON is a writer's progress as the actions answer it.
func writerJSON(key string, p sinkapi.Progress, found bool) map[string]any {
	principal, writer := splitScoped(key)
	out := map[string]any{"principal": principal, "writer_id": writer, "found": found, "topic": nil, "last_checkpoint": nil,
		"committed_rows": int64(0), "committed_at": nil}
	if found {
		out["topic"], out["last_checkpoint"], out["committed_rows"], out["committed_at"] = p.Topic, p.Checkpoint, p.CommittedRows, p.CommittedAt
	}
	return out
}

func (s *Server) writersList(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	var req struct {
		Principal string `json:"principal"`
	}
	if err := decodeAction(action.Type, action.Body, &req); err != nil {
		return err
	}
	caller := PrincipalFromContext(stream.Context())
	if req.Principal != "" && req.Principal != caller.Name && !caller.mayAdminister() {
		return newError(codes.PermissionDenied, ReasonForbidden, "%s: principal %q may not list the writers of principal %q (auth.principals[].admin)",
			action.Type, caller.Name, req.Principal)
	}
	want := req.Principal
	if want == "" && !caller.mayAdminister() {
		want = caller.Name
	}
	all, err := s.sink.Writers(stream.Context())
	if err != nil {
		return kafkaFailed(action.Type, err)
	}
	writers := []map[string]any{}
	for _, p := range all {
		if principal, _ := splitScoped(p.WriterID); want == "" || principal == want {
			writers = append(writers, writerJSON(p.WriterID, p, true))
		}
	}
	return sendJSON(stream, map[string]any{"writers": writers})
}

func (s *Server) writerShow(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	key, err := writerTarget(stream.Context(), action.Type, action.Body)
	if err != nil {
		return err
	}
	p, found, err := s.sink.WriterStatus(stream.Context(), key)
	if err != nil {
		return kafkaFailed(action.Type, err)
	}
	return sendJSON(stream, writerJSON(key, p, found))
}

func (s *Server) writerReset(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	key, err := writerTarget(stream.Context(), action.Type, action.Body)
	if err != nil {
		return err
	}
	p, found, err := s.sink.ResetWriter(stream.Context(), key)
	if err != nil {
		return kafkaFailed(action.Type, err)
	}
	out := writerJSON(key, sinkapi.Progress{}, false)
	out["found"], out["reset"], out["forgotten"] = found, true, nil
	if found {
		out["forgotten"] = map[string]any{"topic": p.Topic, "last_checkpoint": p.Checkpoint, "committed_rows": p.CommittedRows, "committed_at": p.CommittedAt}
	}
	s.log.Info().Str("principal", PrincipalFromContext(stream.Context()).Name).Str("writer", key).Bool("found", found).Msg("writer-reset")
	return sendJSON(stream, out)
}

// seesTransaction reports whether the caller may see (and abort) the
// transaction of id: an admin every one, others their writers'.
func (s *Server) seesTransaction(caller *Principal, id string) bool {
	return caller.mayAdminister() || strings.HasPrefix(id, s.sink.WriterTransactionalID(caller.Name+":"))
}

func (s *Server) transactionJSON(t sinkapi.Transaction) map[string]any {
	out := map[string]any{"transactional_id": t.TransactionalID, "kind": t.Kind, "principal": nil, "writer_id": nil, "replica": nil,
		"state": t.State, "producer_id": t.ProducerID, "producer_epoch": t.ProducerEpoch, "started_at": nil, "age_ms": nil,
		"timeout_ms": t.Timeout.Milliseconds(), "partitions": t.Partitions, "lingering": t.Lingering, "live_on": nil}
	if t.Kind == sinkapi.TxnKindWriter {
		out["principal"], out["writer_id"] = splitScoped(t.WriterID)
	} else {
		out["replica"] = t.Replica
	}
	if !t.Started.IsZero() {
		out["started_at"], out["age_ms"] = t.Started, time.Since(t.Started).Milliseconds()
	}
	if t.LiveOn != "" {
		out["live_on"] = t.LiveOn
	}
	return out
}

func (s *Server) transactionsList(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	var req struct{}
	if err := decodeAction(action.Type, action.Body, &req); err != nil {
		return err
	}
	caller := PrincipalFromContext(stream.Context())
	all, err := s.sink.Transactions(stream.Context())
	if err != nil {
		return kafkaFailed(action.Type, err)
	}
	txns := []map[string]any{}
	for _, t := range all {
		if s.seesTransaction(caller, t.TransactionalID) {
			txns = append(txns, s.transactionJSON(t))
		}
	}
	return sendJSON(stream, map[string]any{"transactions": txns, "linger_after_ms": s.sink.LingerAfter().Milliseconds()})
}

func (s *Server) transactionAbort(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	var req struct {
		TransactionalID string `json:"transactional_id"`
	}
	if err := decodeAction(action.Type, action.Body, &req); err != nil {
		return err
	}
	if req.TransactionalID == "" {
		return newError(codes.InvalidArgument, ReasonBadRequest, `%s: key "transactional_id" is required`, action.Type)
	}
	caller := PrincipalFromContext(stream.Context())
	if !s.seesTransaction(caller, req.TransactionalID) {
		return newError(codes.PermissionDenied, ReasonForbidden, "%s: principal %q may abort only its own writers' transactions, not %q (auth.principals[].admin)",
			action.Type, caller.Name, clip(req.TransactionalID))
	}
	t, err := s.sink.AbortTransaction(stream.Context(), req.TransactionalID)
	if err != nil {
		return kafkaFailed(action.Type, err)
	}
	s.log.Info().Str("principal", caller.Name).Str("transactional_id", t.TransactionalID).Msg("transaction-abort")
	out := s.transactionJSON(t)
	out["aborted"], out["state"] = true, "CompleteAbort"
	out["mechanism"] = "EndTxn(abort) as the transaction's producer id and epoch"
	delete(out, "lingering")
	return sendJSON(stream, out)
}
