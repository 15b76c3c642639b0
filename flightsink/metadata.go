package flightsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
)

// Marker is a client's app_metadata on a FlightData message: a checkpoint
// ({"checkpoint": N}) or an abort ({"abort": "reason"}).
type Marker struct {
	Checkpoint int64  // ≥ 1 for a checkpoint marker
	Abort      string // an abort marker's reason, cut by clip (it is echoed in the status)
	IsAbort    bool
}

// ParseMarker parses client app_metadata strictly: exactly one of the keys
// "checkpoint" (an integer ≥ 1) or "abort" (a string). Anything else is an
// *Error with ReasonBadMetadata.
func ParseMarker(meta []byte) (Marker, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(meta))
	if err := dec.Decode(&raw); err != nil || dec.More() || raw == nil {
		return Marker{}, badMetadata(`app_metadata must be a JSON object such as {"checkpoint": 1} or {"abort": "reason"}; got %s`, quoteMeta(meta))
	}
	if len(raw) != 1 {
		return Marker{}, badMetadata(`app_metadata must have exactly one key, "checkpoint" or "abort"; got %s`, quoteMeta(meta))
	}
	if v, ok := raw["checkpoint"]; ok {
		n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil || n < 1 {
			return Marker{}, badMetadata(`app_metadata key "checkpoint" must be an integer >= 1; got %s`, quoteMeta(v))
		}
		return Marker{Checkpoint: n}, nil
	}
	if v, ok := raw["abort"]; ok {
		var reason string
		if err := json.Unmarshal(v, &reason); err != nil {
			return Marker{}, badMetadata(`app_metadata key "abort" must be a string; got %s`, quoteMeta(v))
		}
		return Marker{Abort: clip(reason), IsAbort: true}, nil
	}
	for k := range raw {
		return Marker{}, badMetadata(`app_metadata has unknown key %q (known keys: "checkpoint", "abort")`, clip(k))
	}
	panic("unreachable")
}

func badMetadata(format string, args ...any) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadMetadata, Msg: "invalid app_metadata: " + fmt.Sprintf(format, args...)}
}

// quoteMeta shows client bytes in an error, cut to a readable length.
func quoteMeta(b []byte) string { return strconv.Quote(clip(string(b))) }
