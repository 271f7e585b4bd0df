package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"gopkg.in/yaml.v3"
)

// No Docker engine runs here, so the compose file is checked for what can
// be checked: it parses, its services run this binary's commands, every
// LATCHKEY_ variable it sets on Latchkey is one the configuration knows (the
// reference clients read only LATCHKEY_ISSUER and LATCHKEY_INTERNAL_URL),
// one image is built and reused, the server's health check is `latchkey
// health`, and the clients dial Latchkey by its service name. .ci/run also
// runs `docker-compose config -q`.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Environment map[string]string `yaml:"environment"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	known := map[string]bool{}
	for k := range config.Defaults() {
		known[strings.ToUpper(k)] = true
	}
	for _, k := range []string{"DATABASE_URL", "SECRET", "ADMIN_TOKEN"} {
		known[k] = true
	}
	clientVars := map[string]bool{"ISSUER": true, "INTERNAL_URL": true}
	builds, image := 0, ""
	for _, svc := range compose.Services {
		if svc.Build != "" {
			builds++
			image = svc.Image
		}
	}
	if builds != 1 || image == "" {
		t.Errorf("%d services build an image (named %q); want one, named, that the others reuse", builds, image)
	}
	for name, svc := range compose.Services {
		if name != "postgres" && svc.Image != image {
			t.Errorf("service %s runs image %q, not the one built (%q)", name, svc.Image, image)
		}
		for k := range svc.Environment {
			rest, ok := strings.CutPrefix(k, config.EnvPrefix)
			if ok && len(svc.Entrypoint) > 0 && !clientVars[rest] {
				t.Errorf("reference client %s sets %s, which it does not read", name, k)
			} else if ok && len(svc.Entrypoint) == 0 && !known[rest] {
				t.Errorf("service %s sets unknown %s", name, k)
			}
		}
		if len(svc.Entrypoint) > 0 {
			// Inside its container localhost is the client itself.
			if got := svc.Environment["LATCHKEY_INTERNAL_URL"]; got != "http://latchkey:8080" {
				t.Errorf("reference client %s dials Latchkey at %q, want http://latchkey:8080", name, got)
			}
			bin := svc.Entrypoint[0][strings.LastIndexByte(svc.Entrypoint[0], '/')+1:]
			switch bin {
			case "example", "bff", "service":
			default:
				t.Errorf("service %s runs %q, which the Dockerfile does not build", name, bin)
			}
			continue
		}
		if svc.Image == image && len(svc.Command) > 0 {
			switch svc.Command[0] {
			case "serve", "migrate":
			default:
				t.Errorf("service %s runs unknown command %q", name, svc.Command[0])
			}
		}
	}
	if hc := compose.Services["latchkey"].Healthcheck.Test; !slices.Equal(hc, []string{"CMD", "/usr/local/bin/latchkey", "health"}) {
		t.Errorf("latchkey's health check is %q, want latchkey health (it asks /readyz)", hc)
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^USER nonroot`).Match(dockerfile) || !strings.Contains(string(dockerfile), "./cmd/latchkey") {
		t.Error("the Dockerfile must build ./cmd/latchkey and run as a non-root user")
	}
}
