// Command example is a resource server protected by Latchkey: GET /invoices
// needs a token with scope invoices:read (bearer or DPoP-bound), verified locally against the
// JWKS (or by introspection when INTROSPECTION_CLIENT_ID is set).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/latchkey/latchkey/clients/internal/backchannel"
	resourceserver "github.com/latchkey/latchkey/clients/resource-server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	issuer := flag.String("issuer", issuerDefault(), "Latchkey issuer (default $LATCHKEY_ISSUER, else http://localhost:8080)")
	internal := flag.String("internal-url", os.Getenv("LATCHKEY_INTERNAL_URL"), "where this API dials Latchkey when not at the issuer URL, e.g. http://latchkey:8080 in Compose (default $LATCHKEY_INTERNAL_URL)")
	audience := flag.String("audience", "https://api.example.com", "this API's audience")
	corsOrigin := flag.String("cors-origin", "", "a browser app's origin allowed to call this API (the SPA example)")
	maxLifetime := flag.Duration("max-token-lifetime", 15*time.Minute, "Latchkey's LATCHKEY_ACCESS_TOKEN_TTL: longer-lived JWTs are refused")
	externalURL := flag.String("external-url", "", "this API's URL as clients call it (default http://ADDR): DPoP proofs' htu must match it")
	dpopNonce := flag.Bool("dpop-nonce", false, "demand a server nonce in DPoP proofs (RFC 9449 §9)")
	flag.Parse()

	if *externalURL == "" {
		*externalURL = "http://" + *addr
	}
	// Tokens name the public issuer; the JWKS and introspection calls go to
	// the internal URL.
	hc, err := backchannel.Client(&http.Client{Timeout: 10 * time.Second}, *issuer, *internal)
	if err != nil {
		log.Fatal(err)
	}
	cfg := resourceserver.Config{Issuer: *issuer, Audience: *audience, MaxTokenLifetime: *maxLifetime,
		ExternalURL: *externalURL, DPoPNonce: *dpopNonce, HTTPClient: hc}
	if id := os.Getenv("INTROSPECTION_CLIENT_ID"); id != "" {
		cfg.IntrospectionURL = strings.TrimSuffix(*issuer, "/") + "/oauth2/introspect"
		cfg.ClientID, cfg.ClientSecret = id, os.Getenv("INTROSPECTION_CLIENT_SECRET")
	}
	v, err := resourceserver.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /invoices", v.Middleware("invoices:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := resourceserver.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"caller": claims.Subject, "invoices": []string{"INV-1", "INV-2"}})
	})))
	var handler http.Handler = mux
	if *corsOrigin != "" {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", *corsOrigin)
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, DPoP")
			// A browser client reads these to answer a DPoP challenge.
			w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate, DPoP-Nonce")
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	log.Printf("resource server on %s, trusting %s for audience %s", *addr, *issuer, *audience)
	log.Fatal(http.ListenAndServe(*addr, handler))
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
