package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The connection flags the admin commands (writers, transactions) share,
// and the one Flight call they make: DoAction with a JSON body, answered by
// one JSON result.

// adminConn holds the connection flags.
type adminConn struct {
	server, tlsCA, tlsServerName, token, tokenFile, user string
	tls, json                                            bool
	timeout                                              time.Duration
}

// flags registers the connection flags on fl.
func (c *adminConn) flags(fl *flag.FlagSet) {
	fl.StringVar(&c.server, "server", envOr("FLIGHTSINK_SERVER", "127.0.0.1:8815"), "the flightsink server's Flight address (env FLIGHTSINK_SERVER)")
	fl.BoolVar(&c.tls, "tls", false, "connect with TLS (implied by --tls-ca)")
	fl.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CA that signed the server's certificate (default: the system's)")
	fl.StringVar(&c.tlsServerName, "tls-server-name", "", "the name to verify the server's certificate against (default: the --server host)")
	fl.StringVar(&c.token, "token", "", "bearer token (prefer the environment variable FLIGHTSINK_TOKEN or --token-file: a flag shows in ps)")
	fl.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token")
	fl.StringVar(&c.user, "user", "", "log in with the basic-auth handshake as this user; the password comes from FLIGHTSINK_PASSWORD")
	fl.BoolVar(&c.json, "json", false, "print the server's JSON answer instead of a table")
	fl.DurationVar(&c.timeout, "timeout", time.Minute, "give up after this long")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// call runs one DoAction and decodes its JSON result into out.
func (c *adminConn) call(action string, body any, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	creds := insecure.NewCredentials()
	if c.tls || c.tlsCA != "" {
		cfg := &tls.Config{ServerName: c.tlsServerName, MinVersion: tls.VersionTLS12}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return fmt.Errorf("--tls-ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--tls-ca: no PEM certificate in %s", c.tlsCA)
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(c.server, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("--server %s: %w", c.server, err)
	}
	defer conn.Close()
	client := flight.NewFlightServiceClient(conn)
	token, err := c.bearer(ctx, client)
	if err != nil {
		return err
	}
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var trailer metadata.MD
	stream, err := client.DoAction(ctx, &flight.Action{Type: action, Body: b}, grpc.Trailer(&trailer))
	if err != nil {
		return callError(action, err, trailer)
	}
	res, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: the server answered nothing", action)
		}
		return callError(action, err, trailer)
	}
	if c.json {
		_, err := fmt.Println(string(res.Body))
		return err
	}
	return json.Unmarshal(res.Body, out)
}

// bearer is the token to send: --token, --token-file, FLIGHTSINK_TOKEN, or
// a session token from the basic-auth handshake with --user.
func (c *adminConn) bearer(ctx context.Context, client flight.FlightServiceClient) (string, error) {
	switch {
	case c.token != "":
		return c.token, nil
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case c.user != "":
		cred := base64.StdEncoding.EncodeToString([]byte(c.user + ":" + os.Getenv("FLIGHTSINK_PASSWORD")))
		hs, err := client.Handshake(metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+cred))
		if err != nil {
			return "", callError("login", err, nil)
		}
		_ = hs.CloseSend()
		for {
			if _, err = hs.Recv(); err != nil {
				break
			}
		}
		if !errors.Is(err, io.EOF) {
			return "", callError("login", err, hs.Trailer())
		}
		v := hs.Trailer().Get("authorization")
		if len(v) == 0 {
			return "", errors.New("login: the server sent no session token")
		}
		return strings.TrimPrefix(v[0], "Bearer "), nil
	}
	return os.Getenv("FLIGHTSINK_TOKEN"), nil
}

// callError is a failed call as the command reports it: the server's
// message and its flightsink-reason.
func callError(action string, err error, trailer metadata.MD) error {
	st := status.Convert(err)
	msg := fmt.Sprintf("%s: %s: %s", action, st.Code(), st.Message())
	if v := trailer.Get("flightsink-reason"); len(v) > 0 {
		msg += " (reason " + v[0] + ")"
	}
	return errors.New(msg)
}
