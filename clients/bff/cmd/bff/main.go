// Command bff runs the backend-for-frontend example; see package bff.
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/latchkey/latchkey/clients/bff"
	"github.com/latchkey/latchkey/clients/internal/backchannel"
)

func main() {
	addr := flag.String("addr", "localhost:3000", "listen address")
	issuer := flag.String("issuer", issuerDefault(), "Latchkey issuer (default $LATCHKEY_ISSUER, else http://localhost:8080)")
	internal := flag.String("internal-url", os.Getenv("LATCHKEY_INTERNAL_URL"), "where the BFF dials Latchkey when not at the issuer URL, e.g. http://latchkey:8080 in Compose (default $LATCHKEY_INTERNAL_URL)")
	base := flag.String("base-url", "http://localhost:3000", "where browsers reach this BFF")
	api := flag.String("api", "http://127.0.0.1:9090/invoices", "the upstream proxied at /api/invoices")
	insecure := flag.Bool("insecure", false, "plain-http development: no Secure flag, no __Host- prefix")
	flag.Parse()
	// COOKIE_KEY (32 bytes, base64) seals sign-ins in progress; set the same
	// one on every instance. Unset, a random key is used per process.
	key, err := base64.StdEncoding.DecodeString(os.Getenv("COOKIE_KEY"))
	if err != nil {
		log.Fatalf("COOKIE_KEY: %v", err)
	}
	// Browsers are sent to the issuer's URLs; discovery, the JWKS, the token
	// and revocation calls go to the internal URL.
	hc, err := backchannel.Client(&http.Client{Timeout: 15 * time.Second}, *issuer, *internal)
	if err != nil {
		log.Fatal(err)
	}
	b, err := bff.New(context.Background(), bff.Config{HTTPClient: hc,
		Issuer: *issuer, ClientID: os.Getenv("CLIENT_ID"), ClientSecret: os.Getenv("CLIENT_SECRET"),
		BaseURL: *base, Scopes: []string{"openid", "profile", "email", "invoices:read", "offline_access"},
		Upstreams: map[string]string{"invoices": *api}, Insecure: *insecure, CookieKey: key,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("BFF on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, b))
}

// issuerDefault is LATCHKEY_ISSUER, the variable the server is configured
// with, so one environment serves both; http://localhost:8080 (serve --dev)
// without it.
func issuerDefault() string {
	if v := os.Getenv("LATCHKEY_ISSUER"); v != "" {
		return v
	}
	return "http://localhost:8080"
}
