package kafka

import (
	"fmt"
	"math"
	"time"
)

// timestampAllowed says why a topic would reject a record timestamp, or "".
func timestampAllowed(ms int64, info TopicInfo, now time.Time) string {
	w := timestampWindow(info, now)
	if ms >= w.lo && ms <= w.hi {
		return ""
	}
	ts := func() string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
	if ms < 0 {
		return fmt.Sprintf("its timestamp %s is before 1970, which Kafka record timestamps cannot be", ts())
	}
	if !info.CreateTime {
		return ""
	}
	if max := info.TimestampBeforeMax; ms < w.lo {
		return fmt.Sprintf("its timestamp %s is more than message.timestamp.before.max.ms (%d ms) before now, so topic %q would reject it",
			ts(), max.Milliseconds(), info.Topic)
	}
	if max := info.TimestampAfterMax; ms > w.hi {
		return fmt.Sprintf("its timestamp %s is more than message.timestamp.after.max.ms (%d ms) after now, so topic %q would reject it",
			ts(), max.Milliseconds(), info.Topic)
	}
	return ""
}

// msWindow is the range of record timestamps (ms) a topic accepts now.
type msWindow struct{ lo, hi int64 }

// timestampWindow is what timestampAllowed accepts: from 1970 on, within
// the topic's message.timestamp.before/after.max.ms of now when the topic
// keeps the producer's timestamps (CreateTime).
func timestampWindow(info TopicInfo, now time.Time) msWindow {
	w := msWindow{0, math.MaxInt64}
	if !info.CreateTime {
		return w
	}
	if max := info.TimestampBeforeMax; max < time.Duration(math.MaxInt64) {
		w.lo = max64(0, now.Add(-max).UnixMilli())
	}
	if max := info.TimestampAfterMax; max < time.Duration(math.MaxInt64) {
		w.hi = now.Add(max).UnixMilli()
	}
	return w
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
