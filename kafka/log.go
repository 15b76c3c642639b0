package kafka

import (
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kzeroLogger routes franz-go's logs into zerolog. kgo's info level is
// chatty (every connection), so it is logged at debug.
type kzeroLogger struct{ log zerolog.Logger }

func (l kzeroLogger) Level() kgo.LogLevel {
	switch l.log.GetLevel() {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return kgo.LogLevelDebug
	case zerolog.InfoLevel, zerolog.WarnLevel:
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (l kzeroLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var ev *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		ev = l.log.Error()
	case kgo.LogLevelWarn:
		ev = l.log.Warn()
	default:
		ev = l.log.Debug()
	}
	ev = ev.Str("component", "kgo")
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, ok := keyvals[i].(string)
		if !ok {
			continue
		}
		if err, isErr := keyvals[i+1].(error); isErr {
			ev = ev.Str(k, err.Error()) // an error's text, not its struct fields
		} else {
			ev = ev.Interface(k, keyvals[i+1])
		}
	}
	ev.Msg(msg)
}
