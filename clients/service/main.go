// Command service is a backend that calls an API with Latchkey tokens from
// the client-credentials grant. golang.org/x/oauth2 keeps the token and
// fetches a new one shortly before it expires, so a busy service asks
// Latchkey once per token lifetime, not once per call.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/latchkey/latchkey/clients/internal/backchannel"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	issuer := flag.String("issuer", issuerDefault(), "Latchkey issuer (default $LATCHKEY_ISSUER, else http://localhost:8080)")
	internal := flag.String("internal-url", os.Getenv("LATCHKEY_INTERNAL_URL"), "where the service dials Latchkey when not at the issuer URL, e.g. http://latchkey:8080 in Compose (default $LATCHKEY_INTERNAL_URL)")
	api := flag.String("api", "http://127.0.0.1:9090/invoices", "the API to call")
	audience := flag.String("audience", "https://api.example.com", "the API's audience")
	every := flag.Duration("every", 5*time.Second, "call interval")
	flag.Parse()

	// The metadata must name the public issuer; it is fetched, and tokens
	// are asked for, at the internal URL.
	hc, err := backchannel.Client(&http.Client{Timeout: 15 * time.Second}, *issuer, *internal)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	tokenURL, err := discoverTokenURL(ctx, hc, *issuer)
	if err != nil {
		log.Fatal(err)
	}
	conf := clientcredentials.Config{
		ClientID:       os.Getenv("CLIENT_ID"),
		ClientSecret:   os.Getenv("CLIENT_SECRET"),
		TokenURL:       tokenURL,
		Scopes:         []string{"invoices:read"},
		EndpointParams: map[string][]string{"audience": {*audience}},
		// Latchkey registers client_secret_basic unless told otherwise.
		// Left to guess, x/oauth2 retries a refused Basic request with the
		// secret in the body, and a wrong secret then surfaces as
		// "client_secret_post was requested" instead of what went wrong.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	// Client returns an *http.Client that attaches the token and renews it.
	client := conf.Client(ctx)
	for {
		resp, err := client.Get(*api)
		if err != nil {
			log.Printf("call: %v", err)
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%s %s\n", resp.Status, body)
		}
		time.Sleep(*every)
	}
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

// discoverTokenURL reads the token endpoint from the issuer's metadata
// (RFC 8414) rather than assuming a path, and checks that the document is
// the issuer's own.
func discoverTokenURL(ctx context.Context, hc *http.Client, issuer string) (string, error) {
	issuer = strings.TrimSuffix(issuer, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return "", fmt.Errorf("issuer %q: %w", issuer, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch metadata: %s", resp.Status)
	}
	var md struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return "", fmt.Errorf("read metadata: %w", err)
	}
	if md.Issuer != issuer || md.TokenEndpoint == "" {
		return "", fmt.Errorf("metadata names issuer %q and token endpoint %q; want issuer %q", md.Issuer, md.TokenEndpoint, issuer)
	}
	return md.TokenEndpoint, nil
}
