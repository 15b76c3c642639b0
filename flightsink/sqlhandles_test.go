package flightsink

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/internal/secret"
)

func wantReason(t *testing.T, what string, err error, reason Reason) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) || fe.Reason != reason {
		t.Fatalf("%s: %v, want reason %s", what, err, reason)
	}
}

// Prepared statement handles: any replica with the same keys opens them,
// only for the principal that prepared them, unaltered and until they
// expire.
func TestPreparedHandles(t *testing.T) {
	var key secret.Secret
	key.Value = strings.Repeat("k", 40)
	signer, err := newSessionSigner([]secret.Secret{key})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	replicaA := newHandleSigner(&authenticator{sessions: signer, now: clock}, time.Hour)
	other, _ := newSessionSigner([]secret.Secret{key})
	replicaB := newHandleSigner(&authenticator{sessions: other, now: clock}, time.Hour)
	alice, bob := &Principal{Name: "alice"}, &Principal{Name: "bob"}

	h := replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?)", Options: map[string]string{"key_field": "k"}})
	c, err := replicaB.open(h, alice)
	if err != nil || c.SQL != "INSERT INTO t VALUES (?)" || c.Options["key_field"] != "k" {
		t.Fatalf("another replica opens the handle: %+v %v", c, err)
	}
	_, err = replicaB.open(h, bob)
	wantReason(t, "another principal", err, ReasonForbidden)
	if e := classify(err); e.Code != codes.PermissionDenied {
		t.Fatalf("another principal: %v", e.Code)
	}

	tampered := []byte(strings.Replace(string(h), handlePrefix, handlePrefix+"x", 1))
	_, err = replicaA.open(tampered, alice)
	wantReason(t, "a tampered handle", err, ReasonBadRequest)
	var randomKey secret.Secret
	randomKey.Value = strings.Repeat("r", 40)
	stranger, _ := newSessionSigner([]secret.Secret{randomKey})
	_, err = newHandleSigner(&authenticator{sessions: stranger, now: clock}, time.Hour).open(h, alice)
	wantReason(t, "a handle signed with another key", err, ReasonBadRequest)

	// Used every 50 minutes it stays valid on the replica that sees it used,
	// up to its lifetime; a replica that never saw it counts from preparing.
	for now.Add(50*time.Minute).Sub(time.Unix(1_800_000_000, 0)) < preparedTTL {
		now = now.Add(50 * time.Minute)
		if _, err := replicaA.open(h, alice); err != nil {
			t.Fatalf("a handle used every 50 minutes, %v after preparing: %v", now.Sub(time.Unix(1_800_000_000, 0)), err)
		}
	}
	_, err = replicaB.open(h, alice)
	wantReason(t, "a handle idle on this replica since preparing", err, ReasonBadRequest)
	if !strings.Contains(err.Error(), "flight.prepared_statement_idle_timeout") {
		t.Fatalf("idle handle: %v", err)
	}
	now = time.Unix(1_800_000_000, 0).Add(preparedTTL + time.Second)
	_, err = replicaA.open(h, alice)
	wantReason(t, "an expired handle", err, ReasonBadRequest)
	if !strings.Contains(err.Error(), "handles last 24h") {
		t.Fatalf("expired handle: %v", err)
	}

	// Idle for longer than the idle timeout: expired, though young.
	now = time.Unix(1_900_000_000, 0)
	h2 := replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?)"})
	now = now.Add(30 * time.Minute)
	if _, err := replicaA.open(h2, alice); err != nil {
		t.Fatalf("used after 30 minutes: %v", err)
	}
	now = now.Add(61 * time.Minute)
	_, err = replicaA.open(h2, alice)
	wantReason(t, "an idle handle", err, ReasonBadRequest)
	if !strings.Contains(err.Error(), "unused for 1h1m0s") {
		t.Fatalf("idle handle: %v", err)
	}

	// Closed: refused on the replica that closed it.
	h3 := replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?)"})
	replicaA.close(h3)
	_, err = replicaA.open(h3, alice)
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("a closed handle: %v", err)
	}
	replicaA.close([]byte("not a handle")) // ignored
	// The same statement prepared twice at once: two handles, one closed.
	h4, h5 := replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?)"}), replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?)"})
	replicaA.close(h4)
	if _, err := replicaA.open(h5, alice); err != nil {
		t.Fatalf("closing one of two statements prepared alike ended the other: %v", err)
	}

	// The table of uses stays bounded.
	for i := range maxTrackedHandles + 10 {
		if _, err := replicaA.open(replicaA.sign(stmtClaims{Principal: "alice", SQL: "INSERT INTO t VALUES (?) -- " + strconv.Itoa(i)}), alice); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(replicaA.uses); n > maxTrackedHandles {
		t.Fatalf("%d handles tracked, more than %d", n, maxTrackedHandles)
	}

	// Without auth every replica uses the same fixed key.
	anon := newHandleSigner(nil, time.Hour).sign(stmtClaims{Principal: Anonymous.Name, SQL: "x"})
	if _, err := newHandleSigner(nil, time.Hour).open(anon, Anonymous); err != nil {
		t.Fatalf("anonymous handle on another replica: %v", err)
	}
}

// Only principals with declare_tables may declare tables; the anonymous
// principal may.
func TestDeclareTablesPermission(t *testing.T) {
	st, err := parseSQL(`CREATE TABLE t (a INT)`)
	if err != nil {
		t.Fatal(err)
	}
	err = declareTable(t.Context(), nil, &Principal{Name: "writer", topics: []string{"*"}}, st, "", nil)
	wantReason(t, "a principal without declare_tables", err, ReasonForbidden)
	if !strings.Contains(err.Error(), "declare_tables") {
		t.Fatalf("message should name the setting: %v", err)
	}
}
