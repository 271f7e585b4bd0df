// Command vulnindex writes a Go vulnerability database in the v1 layout
// that govulncheck reads with -db file://DIR (index/db.json,
// index/modules.json, ID/<id>.json; https://go.dev/security/vuln/database#api)
// from a directory of OSV files, such as data/osv of the golang.org/x/vulndb
// module. vuln.go.dev need not be reachable: CI checks against the advisories
// of the vulndb version pinned in go.mod.
//
// The index follows govulncheck's own (x/vuln internal/client/index.go): a
// module's entry for an advisory carries the latest fix that no later
// introduction supersedes, since govulncheck skips an advisory whose fix is
// not after the version in use.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced"`
		Fixed      string `json:"fixed"`
	} `json:"events"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	vulns := flag.String("vulns", "", "directory of OSV JSON files")
	out := flag.String("out", "", "directory to write the database to")
	flag.Parse()
	if *vulns == "" || *out == "" {
		log.Fatal("usage: vulnindex -vulns DIR -out DIR")
	}
	if err := run(*vulns, *out); err != nil {
		log.Fatal(err)
	}
}

func run(vulns, out string) error {
	files, err := filepath.Glob(filepath.Join(vulns, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no OSV files in %s", vulns)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	var modified time.Time
	modules := map[string]*moduleMeta{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if filepath.Base(f) != e.ID+".json" {
			return fmt.Errorf("%s: file name does not match id %q", f, e.ID)
		}
		if e.Modified.After(modified) {
			modified = e.Modified
		}
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name, Vulns: []moduleVuln{}}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: latestFix(a.Ranges)})
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return err
		}
	}
	list := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		slices.SortFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		list = append(list, m)
	}
	slices.SortFunc(list, func(a, b *moduleMeta) int { return strings.Compare(a.Path, b.Path) })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), list); err != nil {
		return err
	}
	return writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": modified})
}

// latestFix is x/vuln's NonSupersededFix: the latest fixed version, or ""
// when the vulnerability was introduced again after it.
func latestFix(ranges []osvRange) string {
	less := func(a, b string) bool { return semver.Compare("v"+a, "v"+b) < 0 }
	latest := ""
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && (latest == "" || less(latest, e.Fixed)) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && latest != "" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
