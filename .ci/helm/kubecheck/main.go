// Command kubecheck validates rendered Kubernetes manifests offline (CI
// reaches no schema server): each document is decoded strictly into the
// k8s.io/api type of its apiVersion and kind, so an unknown or misspelt
// field, a wrong type or a bad quantity is an error, and then the
// apimachinery validations of names, labels and annotations run, with the
// cross-object checks a cluster would only show at run time: selectors
// that select the pods, named ports that exist, Ingress and ServiceMonitor
// targets that exist, and the chart's own policy (probes, resources,
// non-root, read-only root file system).
//
//	helm template … | kubecheck
//	kubecheck rendered.yaml…
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	var docs []document
	inputs := os.Args[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	for _, in := range inputs {
		var r io.Reader = os.Stdin
		if in != "-" {
			f, err := os.Open(in)
			if err != nil {
				fmt.Fprintln(os.Stderr, "kubecheck:", err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		}
		d, err := split(r, in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubecheck:", err)
			os.Exit(2)
		}
		docs = append(docs, d...)
	}
	objs, errs := check(docs)
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
	fmt.Printf("kubecheck: %d objects valid\n", objs)
}

// document is one YAML document of a stream, with where it came from.
type document struct {
	source string
	data   []byte
}

// split cuts a multi-document YAML stream at its "---" lines and drops
// documents that hold only comments (helm template emits those for
// templates that render nothing).
func split(r io.Reader, source string) ([]document, error) {
	var docs []document
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, document{source, bytes.Clone(cur.Bytes())})
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	flush()
	if len(docs) == 0 {
		return nil, errors.New("no manifests in " + source)
	}
	return docs, nil
}

func hasContent(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}
