package flightsink

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/flightsink/flightsink/internal/metrics"
)

// certPrincipal is the principal a verified client certificate names (by
// auth.client_cert_principal: its subject CN, or one of its DNS SANs). A
// certificate naming no configured principal, or several, authenticates
// nobody.
func (a *authenticator) certPrincipal(ctx context.Context) (*Principal, *failure) {
	p, _ := peer.FromContext(ctx)
	var info credentials.TLSInfo
	if p != nil {
		info, _ = p.AuthInfo.(credentials.TLSInfo)
	}
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, &failure{reason: metrics.AuthMissingCredentials,
			err: unauthenticated(`missing credentials: present a client certificate, or send "authorization: Bearer <token>"`)}
	}
	leaf := info.State.VerifiedChains[0][0]
	var names []string
	switch a.certMode {
	case CertPrincipalSubjectCN:
		names = []string{leaf.Subject.CommonName}
	case CertPrincipalSANDNS:
		names = leaf.DNSNames
	}
	var found []*Principal
	for _, n := range names {
		if pr, ok := a.principals[n]; ok && !slices.Contains(found, pr) {
			found = append(found, pr)
		}
	}
	subject := leaf.Subject.String()
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, &failure{reason: metrics.AuthBadCertificate, fingerprint: fingerprint(subject), err: unauthenticated(fmt.Sprintf(
			"the client certificate (subject %q) names no principal of auth.principals by its %s", shortSubject(subject), a.certMode))}
	}
	return nil, &failure{reason: metrics.AuthBadCertificate, fingerprint: fingerprint(subject), err: unauthenticated(fmt.Sprintf(
		"the client certificate (subject %q) names %d principals by its %s; it must name one", shortSubject(subject), len(found), a.certMode))}
}

// shortSubject bounds a certificate subject echoed into a status message.
func shortSubject(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:n], ""), len(s))
}
