package main

import (
	"strings"
	"testing"
)

const good = `apiVersion: apps/v1
kind: Deployment
metadata: {name: lk, labels: {app: lk}}
spec:
  selector: {matchLabels: {app: lk}}
  template:
    metadata: {labels: {app: lk}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: lk
          image: latchkey:dev
          ports: [{name: public, containerPort: 8080}]
          livenessProbe: {httpGet: {path: /healthz, port: public}}
          readinessProbe: {httpGet: {path: /readyz, port: public}}
          resources: {requests: {cpu: 100m}, limits: {memory: 128Mi}}
          securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
---
apiVersion: v1
kind: Service
metadata: {name: lk}
spec:
  selector: {app: lk}
  ports: [{name: public, port: 8080, targetPort: public}]
`

// Each broken variant of a valid pair of manifests is refused with a
// message that names the problem.
func TestCheck(t *testing.T) {
	if _, errs := check(mustSplit(t, good)); len(errs) != 0 {
		t.Fatalf("valid manifests refused: %v", errs)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "  selector: {matchLabels", "  colour: blue\n  selector: {matchLabels", "unknown field"},
		{"misspelt field", "readinessProbe:", "readynessProbe:", "unknown field"},
		{"wrong type", "containerPort: 8080", "containerPort: eighty", "containerPort"},
		{"bad quantity", "memory: 128Mi", "memory: lots", "quantities"},
		{"bad label", "labels: {app: lk}}\nspec", "labels: {app: -lk}}\nspec", "metadata.labels"},
		{"selector misses the pods", "selector: {matchLabels: {app: lk}}", "selector: {matchLabels: {app: other}}", "does not select"},
		{"service selects nothing", "selector: {app: lk}", "selector: {app: nobody}", "selects no pod"},
		{"unknown target port", "targetPort: public", "targetPort: http", `targetPort "http"`},
		{"probe on a missing port", "path: /readyz, port: public", "path: /readyz, port: web", `readiness probe's port "web"`},
		{"writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"root allowed", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"},
		{"no resources", "resources: {requests: {cpu: 100m}, limits: {memory: 128Mi}}", "resources: {}", "resources"},
		{"uppercase name", "metadata: {name: lk}", "metadata: {name: LK}", "metadata.name"},
		{"unchecked kind", "kind: Service", "kind: Secret", "unchecked kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.from) {
				t.Fatalf("%q is not in the manifest", tc.from)
			}
			_, errs := check(mustSplit(t, strings.Replace(good, tc.from, tc.to, 1)))
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Errorf("errors %q do not mention %q", all, tc.want)
			}
		})
	}
}

func mustSplit(t *testing.T, s string) []document {
	t.Helper()
	docs, err := split(strings.NewReader("# comment only\n---\n"+s), "test")
	if err != nil {
		t.Fatal(err)
	}
	return docs
}
