package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Sections splits a goose migration into its Up and Down SQL.
func Sections(file string) (up, down string) {
	up, down, _ = strings.Cut(file, "-- +goose Down")
	up = strings.TrimPrefix(strings.TrimSpace(up), "-- +goose Up")
	return strings.TrimSpace(up), strings.TrimSpace(down)
}

// Down returns the Down section of the dialect's migration version.
func Down(dialect string, version int64) (string, error) {
	files, err := fs.Glob(FS, dialect+"/*.sql")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		n, _, _ := strings.Cut(path.Base(f), "_")
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v == version {
			b, err := fs.ReadFile(FS, f)
			if err != nil {
				return "", err
			}
			_, down := Sections(string(b))
			return down, nil
		}
	}
	return "", fmt.Errorf("no %s migration %05d", dialect, version)
}

var (
	losesData  = regexp.MustCompile(`(?i)\bDROP\s+(TABLE|COLUMN)\s+(IF\s+EXISTS\s+)?("?\w+"?)`)
	alterTable = regexp.MustCompile(`(?i)ALTER\s+TABLE\s+("?\w+"?)`)
)

// Losses names what running sql deletes with its rows: each dropped table
// and column ("table scopes", "column clients.logo_uri"). Dropped indexes
// and functions hold no data and are not listed.
func Losses(sql string) []string {
	var out []string
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		m := losesData.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := strings.Trim(m[3], `"`)
		if strings.EqualFold(m[1], "column") {
			if t := alterTable.FindStringSubmatch(line); t != nil {
				name = strings.Trim(t[1], `"`) + "." + name
			}
			out = append(out, "column "+name)
			continue
		}
		out = append(out, "table "+name)
	}
	return out
}
