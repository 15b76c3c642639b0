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

// UsePool makes the plan encode into batches from pool (acknowledged
// batches of the same stream) instead of allocating each.
func (p *Plan) UsePool(pool *RecordPool) { p.pool = pool }

// SetChunkBytes sets the most one Encode call builds: records, their bytes
// and headers. What a batch expands into is built and produced in chunks
// of about this size.
func (p *Plan) SetChunkBytes(n int) { p.chunkBytes = max(n, 1) }

// AvroSchema is the Avro writer schema of format avro, "" otherwise.
func (p *Plan) AvroSchema() string { return p.avroSchema }

// Registered reports whether the values carry a schema registry's wire
// format header (format avro with a registry).
func (p *Plan) Registered() bool { return p.prefix != nil }

// UnresolvedTopic is a topic_field topic the plan has not been given yet;
// Row is the first row of the bound batch that names it.
type UnresolvedTopic struct {
	Name string
	Row  int
}

// UnknownTopics lists the bound batch's topic_field topics the plan does
// not know (see AddTopic), in the order of their first rows, so a caller
// can check and look each up once before encoding: no I/O happens inside
// Encode. A null topic is a *RowError.
func (p *Plan) UnknownTopics() ([]UnresolvedTopic, error) {
	col := p.bound.topic
	if col == nil {
		return nil, nil
	}
	var out []UnresolvedTopic
	var seen map[string]bool
	prev, prevOK := "", false
	for i := 0; i < p.bound.rows; i++ {
		if col.IsNull(i) {
			return nil, &RowError{i, fmt.Sprintf("its topic_field %q is null", p.d.TopicField)}
		}
		name := col.Value(i)
		if prevOK && name == prev { // sorted or grouped data: no map look-up
			continue
		}
		prev, prevOK = name, true
		if _, ok := p.topics[name]; ok || seen[name] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		name = string([]byte(name)) // own the bytes: name points into Arrow memory
		seen[name] = true
		out = append(out, UnresolvedTopic{name, i})
	}
	return out, nil
}

// AddTopic gives the plan a topic_field topic rows may go to.
func (p *Plan) AddTopic(name string, info TopicInfo) {
	name = p.internString(name)
	p.topics[name] = topicEntry{name, info}
}
