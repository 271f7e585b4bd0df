// Command service is a backend that calls an API with Latchkey tokens from
// the client-credentials grant. golang.org/x/oauth2 keeps the token and
// fetches a new one shortly before it expires, so a busy service asks
// Latchkey once per token lifetime, not once per call.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	issuer := flag.String("issuer", "http://localhost:8080", "Latchkey issuer")
	api := flag.String("api", "http://127.0.0.1:9090/invoices", "the API to call")
	audience := flag.String("audience", "https://api.example.com", "the API's audience")
	every := flag.Duration("every", 5*time.Second, "call interval")
	flag.Parse()

	conf := clientcredentials.Config{
		ClientID:       os.Getenv("CLIENT_ID"),
		ClientSecret:   os.Getenv("CLIENT_SECRET"),
		TokenURL:       *issuer + "/oauth2/token",
		Scopes:         []string{"invoices:read"},
		EndpointParams: map[string][]string{"audience": {*audience}},
	}
	// Client returns an *http.Client that attaches the token and renews it.
	client := conf.Client(context.Background())
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
