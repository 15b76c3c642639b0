package flightsink

import (
	"encoding/json"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
)

// ActionWriterStatus is the DoAction type that returns a named writer's
// committed progress without opening a stream (and without fencing it).
const ActionWriterStatus = "writer-status"

var actions = append([]*flight.ActionType{{
	Type: ActionWriterStatus,
	Description: `Body {"writer_id": "..."}. Returns {"writer_id","found","topic","last_checkpoint","committed_rows","committed_at"}: ` +
		`what the writer has committed (its last commit included, however recent), to decide where to resume. Does not fence the writer.`,
}}, adminActions...)

// ListActions lists the actions DoAction serves.
func (s *Server) ListActions(_ *flight.Empty, stream flight.FlightService_ListActionsServer) error {
	for _, a := range actions {
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	return nil
}

// DoAction serves the actions of ListActions.
func (s *Server) DoAction(action *flight.Action, stream flight.FlightService_DoActionServer) error {
	switch action.Type {
	case ActionWriterStatus:
		var req struct {
			WriterID string `json:"writer_id"`
		}
		if err := json.Unmarshal(action.Body, &req); err != nil {
			return newError(codes.InvalidArgument, ReasonBadRequest, `writer-status: body must be {"writer_id": "..."}: %s`, clip(err.Error()))
		}
		if !writerIDRE.MatchString(req.WriterID) {
			return newError(codes.InvalidArgument, ReasonBadRequest, `writer-status: key "writer_id": %q must be 1-200 characters of [A-Za-z0-9._-]`, clip(req.WriterID))
		}
		principal := PrincipalFromContext(stream.Context())
		p, found, err := s.sink.WriterStatus(stream.Context(), principal.scopedWriter(req.WriterID))
		if err != nil {
			e := classify(err)
			return &Error{Code: e.Code, Reason: e.Reason, Msg: "writer-status: " + e.Msg, Err: err}
		}
		out := map[string]any{"writer_id": req.WriterID, "found": found, "topic": nil, "last_checkpoint": nil,
			"committed_rows": int64(0), "committed_at": nil}
		if found {
			out["topic"], out["last_checkpoint"], out["committed_rows"], out["committed_at"] = p.Topic, p.Checkpoint, p.CommittedRows, p.CommittedAt
		}
		b, _ := json.Marshal(out)
		return stream.Send(&flight.Result{Body: b})
	case ActionWritersList:
		return s.writersList(action, stream)
	case ActionWriterShow:
		return s.writerShow(action, stream)
	case ActionWriterReset:
		return s.writerReset(action, stream)
	case ActionTransactionsList:
		return s.transactionsList(action, stream)
	case ActionTransactionAbort:
		return s.transactionAbort(action, stream)
	}
	if strings.HasPrefix(action.Type, "BeginTransaction") || strings.HasPrefix(action.Type, "EndTransaction") ||
		strings.HasPrefix(action.Type, "BeginSavepoint") || strings.HasPrefix(action.Type, "EndSavepoint") ||
		strings.Contains(action.Type, "PreparedStatement") || strings.HasPrefix(action.Type, "Cancel") ||
		action.Type == flight.SetSessionOptionsActionType || action.Type == flight.GetSessionOptionsActionType ||
		action.Type == flight.CloseSessionActionType { // the JDBC driver's catalog property
		return s.sql.DoAction(action, stream)
	}
	return newError(codes.Unimplemented, ReasonUnimplemented, "unknown action %q; ListActions lists the actions this server serves", clip(action.Type))
}
