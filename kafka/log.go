package kafka

import (
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kzeroLogger routes franz-go's logs into zerolog. kgo's info level is
// chatty (every connection), so it is logged at debug. Errors are logged
// with their text, and given to onErr (if set): kgo tells of a failed
// authentication only in its logs when it retries.
type kzeroLogger struct {
	log   zerolog.Logger
	onErr func(error)
}

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
			ev = ev.AnErr(k, err) // Interface would print an error as {}
			if l.onErr != nil {
				l.onErr(err)
			}
			continue
		}
		ev = ev.Interface(k, keyvals[i+1])
	}
	ev.Msg(msg)
}
