package flightsink

import (
	"errors"
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
	replicaA := newHandleSigner(&authenticator{sessions: signer, now: clock})
	other, _ := newSessionSigner([]secret.Secret{key})
	replicaB := newHandleSigner(&authenticator{sessions: other, now: clock})
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
	_, err = newHandleSigner(&authenticator{sessions: stranger, now: clock}).open(h, alice)
	wantReason(t, "a handle signed with another key", err, ReasonBadRequest)

	now = now.Add(preparedTTL + time.Second)
	_, err = replicaA.open(h, alice)
	wantReason(t, "an expired handle", err, ReasonBadRequest)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired handle: %v", err)
	}

	// Without auth every replica uses the same fixed key.
	anon := newHandleSigner(nil).sign(stmtClaims{Principal: Anonymous.Name, SQL: "x"})
	if _, err := newHandleSigner(nil).open(anon, Anonymous); err != nil {
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
