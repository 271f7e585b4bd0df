package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/internal/config"
	"gopkg.in/yaml.v3"
)

// No Docker engine runs here, so the compose file is checked for what can
// be checked: it parses, its services run this binary's commands, and every
// LATCHKEY_ variable it sets is one the configuration knows.
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Command     []string          `yaml:"command"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Environment map[string]string `yaml:"environment"`
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
	for name, svc := range compose.Services {
		for k := range svc.Environment {
			if rest, ok := strings.CutPrefix(k, config.EnvPrefix); ok && !known[rest] {
				t.Errorf("service %s sets unknown %s", name, k)
			}
		}
		if len(svc.Entrypoint) > 0 {
			bin := svc.Entrypoint[0][strings.LastIndexByte(svc.Entrypoint[0], '/')+1:]
			switch bin {
			case "example", "bff", "service":
			default:
				t.Errorf("service %s runs %q, which the Dockerfile does not build", name, bin)
			}
			continue
		}
		if svc.Build != "" && len(svc.Command) > 0 {
			switch svc.Command[0] {
			case "serve", "migrate":
			default:
				t.Errorf("service %s runs unknown command %q", name, svc.Command[0])
			}
		}
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^USER nonroot`).Match(dockerfile) || !strings.Contains(string(dockerfile), "./cmd/latchkey") {
		t.Error("the Dockerfile must build ./cmd/latchkey and run as a non-root user")
	}
}
