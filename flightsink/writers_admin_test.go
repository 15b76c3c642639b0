package flightsink_test

import (
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/internal/secret"
)

// TestWriterStatusReadsItsOwnLastCommit: writer-status right after a
// stream's done reports that stream's last commit, 50 times in a row on the
// replica that ran the stream and 50 times on another replica (Kafka
// answers a commit before it writes the markers; the status read must not
// read to a last stable offset that is still short of them).
func TestWriterStatusReadsItsOwnLastCommit(t *testing.T) {
	kcfg := replicaConfig(t)
	a := startReplica(t, "a", nil, kcfg)
	b := startReplica(t, "b", nil, kcfg)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, a.brokers, topic, 3, nil)
	writer := "status-" + topic
	desc := eosDesc(topic, "writer_id", writer)
	for i := 1; i <= 100; i++ {
		reader, where := a, "the same replica"
		if i > 50 {
			reader, where = b, "another replica"
		}
		rec := simpleBatch((i-1)*10, 10, -1, 0)
		res := a.put(t, desc, simpleSchema, batchMeta(rec, checkpoint(i)))
		rec.Release()
		wantOK(t, res)
		mustAck(t, res.acks[len(res.acks)-1], nil, map[string]any{"type": "done", "last_checkpoint": float64(i), "committed_rows": float64(10 * i)})
		st := writerStatus(t, reader, writer)
		if st["found"] != true || st["last_checkpoint"] != float64(i) || st["committed_rows"] != float64(10*i) {
			t.Fatalf("stream %d: writer-status on %s right after done: %v; want checkpoint %d, %d rows", i, where, st, i, 10*i)
		}
	}
}

// TestWritersAdmin: two principals on two replicas. Each lists, shows and
// resets only its own writers: another's is PermissionDenied naming it, an
// admin sees and resets all. A reset fences the writer's live stream on the
// other replica (its next checkpoint ends Aborted "fenced" and nothing it
// sends becomes visible), and a re-open starts from zero.
func TestWritersAdmin(t *testing.T) {
	opts := []flightsink.Option{flightsink.WithAuth(adminAuth(t))}
	kcfg := replicaConfig(t)
	a := startReplica(t, "a", opts, kcfg)
	b := startReplica(t, "b", opts, kcfg)
	topic := kafkatest.TopicName(t) // loader may write TestWriter*
	kafkatest.CreateTopic(t, a.brokers, topic, 2, nil)
	rec := simpleBatch(0, 5, -1, 0)
	defer rec.Release()

	loaderA, loaderB := a.as(t, loaderToken, nil), b.as(t, loaderToken, nil)
	aliceB := b.as(t, loginAlice(t, b), nil)
	opsA := a.as(t, opsToken, nil)

	// loader's writer "shared" on replica a, alice's "shared" and "own" on b.
	wantOK(t, loaderA.put(t, eosDesc(topic, "writer_id", "shared"), simpleSchema, batchMeta(rec, checkpoint(1))))
	wantOK(t, aliceB.put(t, eosDesc(topic, "writer_id", "shared"), simpleSchema, batchMeta(rec, checkpoint(1)), batchMeta(rec, checkpoint(2))))
	wantOK(t, aliceB.put(t, eosDesc(topic, "writer_id", "own"), simpleSchema, batchMeta(rec, checkpoint(1))))

	// Each principal lists its own writers, on either replica.
	wantWriters(t, "loader's list", loaderB.action(t, flightsink.ActionWritersList, map[string]any{}).ok(t, "loader list"), "loader/shared:1")
	wantWriters(t, "alice's list", a.as(t, loginAlice(t, a), nil).action(t, flightsink.ActionWritersList, nil).ok(t, "alice list"),
		"alice/own:1", "alice/shared:2")
	wantWriters(t, "the admin's list", opsA.action(t, flightsink.ActionWritersList, nil).ok(t, "ops list"),
		"alice/own:1", "alice/shared:2", "loader/shared:1")

	// Another principal's writer: PermissionDenied naming it, and nothing reset.
	aliceB.action(t, flightsink.ActionWriterShow, map[string]any{"writer_id": "shared", "principal": "loader"}).
		refused(t, "alice shows loader's writer", codes.PermissionDenied, flightsink.ReasonForbidden, `writer "shared" of principal "loader"`)
	aliceB.action(t, flightsink.ActionWriterReset, map[string]any{"writer_id": "shared", "principal": "loader"}).
		refused(t, "alice resets loader's writer", codes.PermissionDenied, flightsink.ReasonForbidden, `writer "shared" of principal "loader"`, "auth.principals[].admin")
	aliceB.action(t, flightsink.ActionWritersList, map[string]any{"principal": "loader"}).
		refused(t, "alice lists loader's writers", codes.PermissionDenied, flightsink.ReasonForbidden, `principal "loader"`)
	loaderTxn := kcfg.TransactionalIDPrefix + "-w-loader:shared"
	aliceB.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": loaderTxn}).
		refused(t, "alice aborts loader's writer's transaction", codes.PermissionDenied, flightsink.ReasonForbidden, loaderTxn)
	wantWriter(t, "loader's writer after alice's attempts", loaderA.action(t, flightsink.ActionWriterShow, map[string]any{"writer_id": "shared"}).ok(t, "show"), 1, 5)
	wantWriter(t, "the admin shows loader's writer", opsA.action(t, flightsink.ActionWriterShow, map[string]any{"writer_id": "shared", "principal": "loader"}).ok(t, "show"), 1, 5)

	// A live stream of loader's writer on replica a; the reset on b fences it.
	ls, ready, err := loaderA.open(t, eosDesc(topic, "writer_id", "shared"), simpleSchema)
	mustAck(t, ready, err, map[string]any{"last_checkpoint": 1.0, "committed_rows": 5.0})
	more := simpleBatch(5, 5, -1, 0)
	defer more.Release()
	ack, err := ls.checkpoint(more, 2)
	mustAck(t, ack, err, map[string]any{"checkpoint": 2.0})
	late := simpleBatch(1000, 5, -1, 0)
	defer late.Release()
	ls.send(late, "") // in the live stream's open transaction when the reset comes

	reset := loaderB.action(t, flightsink.ActionWriterReset, map[string]any{"writer_id": "shared"}).ok(t, "loader resets its writer")
	forgotten, _ := reset["forgotten"].(map[string]any)
	if reset["found"] != true || reset["reset"] != true || forgotten["last_checkpoint"] != 2.0 || forgotten["committed_rows"] != 10.0 {
		t.Fatalf("writer-reset: %v; want found, forgotten checkpoint 2 with 10 rows", reset)
	}
	_, err = ls.checkpoint(late, 3)
	wantStatus(t, ls.statusOf(err), codes.Aborted, string(flightsink.ReasonFenced), "fenced")

	// Re-opened, on either replica, the writer starts from zero; alice's are untouched.
	ls, ready, err = loaderB.open(t, eosDesc(topic, "writer_id", "shared"), simpleSchema)
	mustAck(t, ready, err, map[string]any{"last_checkpoint": nil, "committed_rows": 0.0})
	wantOK(t, ls.finish())
	if st := loaderA.action(t, flightsink.ActionWriterShow, map[string]any{"writer_id": "shared"}).ok(t, "show"); st["found"] != false {
		t.Fatalf("writer-show after the reset: %v; want found false", st)
	}
	wantWriters(t, "the admin's list after the reset", opsA.action(t, flightsink.ActionWritersList, nil).ok(t, "ops list"),
		"alice/own:1", "alice/shared:2")

	// An admin resets another principal's writer.
	opsA.action(t, flightsink.ActionWriterReset, map[string]any{"writer_id": "own", "principal": "alice"}).ok(t, "ops resets alice's writer")
	wantWriters(t, "alice's list after the admin's reset", aliceB.action(t, flightsink.ActionWritersList, nil).ok(t, "alice list"), "alice/shared:2")

	// What Kafka holds: loader's checkpoints 1 and 2 (ids 0-9) and alice's
	// three checkpoints of ids 0-4; nothing of the fenced stream (ids 1000+).
	recs := kafkatest.ReadCommitted(t, a.brokers, topic)
	if len(recs) != 25 {
		t.Fatalf("%d records, want 25", len(recs))
	}
	for _, id := range ids(t, recs) {
		if id >= 1000 {
			t.Fatalf("id %d of the fenced stream is visible", id)
		}
	}
}

const opsToken = "ops-token-0123456789abcdef0123"

// adminAuth is authOptions' configuration (loader by token, alice by
// handshake; session keys shared, so every replica accepts alice's token)
// plus "ops", an admin, by token.
func adminAuth(t *testing.T) flightsink.AuthConfig {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "loader"}, {Principal: "ops"}}
	cfg.Tokens[0].Token.Value = loaderToken
	cfg.Tokens[1].Token.Value = opsToken
	cfg.Users = []flightsink.UserConfig{{Username: "alice"}}
	cfg.Users[0].PasswordBcrypt.Value = string(hash)
	cfg.SessionKeys = make([]secret.Secret, 1)
	cfg.SessionKeys[0].Value = "admin-test-session-key-0123456789abcdef"
	cfg.Principals = []flightsink.PrincipalConfig{
		{Name: "loader", Topics: []string{"TestWriter*"}, Delivery: []flightsink.Delivery{flightsink.ExactlyOnce}},
		{Name: "alice", Topics: []string{"*"}},
		{Name: "ops", Admin: true},
	}
	return cfg
}

// wantWriters checks a writers-list answer: "principal/writer:checkpoint" each.
func wantWriters(t *testing.T, what string, body map[string]any, want ...string) {
	t.Helper()
	list, _ := body["writers"].([]any)
	var got []string
	for _, w := range list {
		m := w.(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v:%v", m["principal"], m["writer_id"], m["last_checkpoint"]))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: %v; want %v", what, got, want)
	}
}

func wantWriter(t *testing.T, what string, body map[string]any, checkpoint, rows float64) {
	t.Helper()
	if body["found"] != true || body["last_checkpoint"] != checkpoint || body["committed_rows"] != rows {
		t.Fatalf("%s: %v; want checkpoint %v with %v rows", what, body, checkpoint, rows)
	}
}
