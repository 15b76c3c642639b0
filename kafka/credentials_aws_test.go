package kafka

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// No MSK here: these tests check the wiring of AWS_MSK_IAM to the AWS SDK's
// default credential chain, down to the message franz-go signs.

// isolateAWS clears every AWS setting of the environment, so the chain sees
// only what a test sets (no real credentials, no instance metadata).
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

const mskHost = "b-1.demo.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"

// mskSigned is what an AWS_MSK_IAM authentication signs: the access key
// and region of x-amz-credential, and the session token.
func mskSigned(t *testing.T, c *credentials) (key, region, session string) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(firstMessage(t, c, mskHost), &m); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(m["x-amz-credential"], "/")
	if len(parts) != 5 || parts[3] != "kafka-cluster" {
		t.Fatalf("x-amz-credential %q", m["x-amz-credential"])
	}
	return parts[0], parts[2], m["x-amz-security-token"]
}

// TestAWSDefaultChain: AWS_MSK_IAM without keys signs with what the AWS
// SDK's default chain finds: environment variables, a shared credentials
// profile, web identity (IRSA) through STS, renewed before expiry.
func TestAWSDefaultChain(t *testing.T) {
	msk := SASLConfig{Mechanism: "AWS_MSK_IAM"}
	t.Run("environment", func(t *testing.T) {
		isolateAWS(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
		t.Setenv("AWS_SESSION_TOKEN", "env-session")
		c, _, _ := testCredentials(t, msk, mskHost)
		if key, region, session := mskSigned(t, c); key != "AKIAENVIRONMENT" || region != "eu-west-1" || session != "env-session" {
			t.Fatalf("signed with %s in %s, session %q", key, region, session)
		}
	})
	t.Run("shared credentials profile", func(t *testing.T) {
		isolateAWS(t)
		body := "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n" +
			"[loader]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n"
		if err := os.WriteFile(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_PROFILE", "loader")
		c, _, _ := testCredentials(t, msk, mskHost)
		if key, _, _ := mskSigned(t, c); key != "AKIAPROFILE" {
			t.Fatalf("signed with %s; want the loader profile's key", key)
		}
	})
	t.Run("web identity", func(t *testing.T) {
		isolateAWS(t)
		sts := newFakeSTS(t)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte("projected-service-account-token"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/flightsink")
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
		t.Setenv("AWS_ENDPOINT_URL_STS", sts.srv.URL)
		c, _, _ := testCredentials(t, msk, mskHost) // no AWS_REGION: the broker's name gives it

		// Credentials that expire within the SDK cache's window are renewed
		// at the next authentication.
		sts.set(2 * time.Minute)
		k1, region, s1 := mskSigned(t, c)
		k2, _, _ := mskSigned(t, c)
		if k1 != "ASIAWEB1" || s1 != "session-1" || k2 != "ASIAWEB2" || region != "eu-west-1" || sts.count() != 2 {
			t.Fatalf("short-lived: signed %s (%s) then %s in %s after %d STS calls; want ASIAWEB1, ASIAWEB2, 2 calls", k1, s1, k2, region, sts.count())
		}
		// Long-lived ones are cached.
		sts.set(time.Hour)
		k3, _, _ := mskSigned(t, c)
		k4, _, _ := mskSigned(t, c)
		if k3 != "ASIAWEB3" || k4 != "ASIAWEB3" || sts.count() != 3 {
			t.Fatalf("long-lived: signed %s then %s after %d STS calls; want ASIAWEB3 twice, 3 calls", k3, k4, sts.count())
		}
		if tok := sts.lastToken(); tok != "projected-service-account-token" {
			t.Fatalf("STS got web identity token %q", tok)
		}
		if d := c.detail(); !strings.Contains(d, "default chain (provider WebIdentityCredentials)") {
			t.Fatalf("detail %q should name the provider", d)
		}
	})
	t.Run("nothing found", func(t *testing.T) {
		isolateAWS(t)
		c, _, _ := testCredentials(t, msk, mskHost)
		_, _, err := c.mechanism().Authenticate(t.Context(), mskHost)
		want := "Kafka credentials unavailable (SASL AWS_MSK_IAM): the AWS SDK's default credential chain (no kafka.sasl.aws_access_key)"
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("no credentials anywhere: %v\nwant an error starting %q", err, want)
		}
	})
}

// fakeSTS answers AssumeRoleWithWebIdentity with credentials numbered by
// call, valid for a settable time.
type fakeSTS struct {
	srv   *httptest.Server
	mu    sync.Mutex
	valid time.Duration
	calls int
	token string
}

func newFakeSTS(t *testing.T) *fakeSTS {
	f := &fakeSTS{valid: time.Hour}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.PostForm.Get("Action") != "AssumeRoleWithWebIdentity" {
			http.Error(w, "unexpected action "+r.PostForm.Get("Action"), http.StatusBadRequest)
			return
		}
		f.calls++
		f.token = r.PostForm.Get("WebIdentityToken")
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAWEB%d</AccessKeyId>
      <SecretAccessKey>web-secret-%d</SecretAccessKey>
      <SessionToken>session-%d</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:data:flightsink</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/flightsink/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r%d</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, f.calls, f.calls, f.calls, time.Now().Add(f.valid).UTC().Format(time.RFC3339), f.calls)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSTS) set(valid time.Duration) {
	f.mu.Lock()
	f.valid = valid
	f.mu.Unlock()
}

func (f *fakeSTS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSTS) lastToken() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}
