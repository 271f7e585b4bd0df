package main

import (
	"fmt"
	"slices"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// objects is what the stream held, by kind, for the cross-object checks.
type objects struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	jobs        []*batchv1.Job
	pdbs        []*policyv1.PodDisruptionBudget
	ingresses   []*networkingv1.Ingress
	monitors    []*monitoringv1.ServiceMonitor
}

// newObject is the typed value for an apiVersion and kind. A kind missing
// here is refused: the chart should not grow kinds nobody checks.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	}
	return nil, false
}

func check(docs []document) (int, []error) {
	var errs []error
	var objs objects
	seen := map[string]bool{}
	for i, d := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(d.data, &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s document %d: %w", d.source, i+1, err))
			continue
		}
		obj, ok := newObject(tm.APIVersion, tm.Kind)
		if !ok {
			errs = append(errs, fmt.Errorf("%s document %d: unchecked kind %q %q", d.source, i+1, tm.APIVersion, tm.Kind))
			continue
		}
		// Strict: unknown fields and duplicate keys are errors, as with
		// kubectl apply --validate=strict.
		if err := yaml.UnmarshalStrict(d.data, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s document %d (%s): %w", d.source, i+1, tm.Kind, err))
			continue
		}
		meta := objectMeta(obj)
		id := tm.Kind + "/" + meta.Name
		if seen[id] {
			errs = append(errs, fmt.Errorf("%s: defined twice", id))
		}
		seen[id] = true
		for _, e := range validateMeta(tm.Kind, meta) {
			errs = append(errs, fmt.Errorf("%s: %v", id, e))
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			objs.deployments = append(objs.deployments, o)
		case *corev1.Service:
			objs.services = append(objs.services, o)
		case *batchv1.Job:
			objs.jobs = append(objs.jobs, o)
		case *policyv1.PodDisruptionBudget:
			objs.pdbs = append(objs.pdbs, o)
		case *networkingv1.Ingress:
			objs.ingresses = append(objs.ingresses, o)
		case *monitoringv1.ServiceMonitor:
			objs.monitors = append(objs.monitors, o)
		}
	}
	errs = append(errs, objs.crossCheck()...)
	return len(docs), errs
}

func objectMeta(obj any) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.ObjectMeta
	case *corev1.Service:
		return &o.ObjectMeta
	case *corev1.ConfigMap:
		return &o.ObjectMeta
	case *corev1.ServiceAccount:
		return &o.ObjectMeta
	case *batchv1.Job:
		return &o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return &o.ObjectMeta
	case *networkingv1.Ingress:
		return &o.ObjectMeta
	case *monitoringv1.ServiceMonitor:
		return &o.ObjectMeta
	}
	panic(fmt.Sprintf("no metadata for %T", obj))
}

// validateMeta runs apimachinery's checks of names, labels and annotations.
func validateMeta(kind string, m *metav1.ObjectMeta) field.ErrorList {
	path := field.NewPath("metadata")
	var errs field.ErrorList
	nameCheck := apivalidation.NameIsDNSSubdomain
	if kind == "Service" {
		nameCheck = apivalidation.NameIsDNS1035Label
	}
	if m.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	}
	for _, msg := range nameCheck(m.Name, false) {
		errs = append(errs, field.Invalid(path.Child("name"), m.Name, msg))
	}
	errs = append(errs, metav1validation.ValidateLabels(m.Labels, path.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(m.Annotations, path.Child("annotations"))...)
	return errs
}

func (o objects) crossCheck() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, d := range o.deployments {
		id := "Deployment/" + d.Name
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			bad("%s: selector %v: %v", id, d.Spec.Selector, err)
		} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			bad("%s: selector %s does not select the pod template's labels %v", id, sel, d.Spec.Template.Labels)
		}
		for _, e := range metav1validation.ValidateLabels(d.Spec.Template.Labels, field.NewPath("spec", "template", "metadata", "labels")) {
			bad("%s: %v", id, e)
		}
		errs = append(errs, checkPod(id, &d.Spec.Template.Spec, true)...)
	}
	for _, j := range o.jobs {
		id := "Job/" + j.Name
		if p := j.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			bad("%s: restartPolicy %q; a Job's must be Never or OnFailure", id, p)
		}
		for _, dep := range o.deployments {
			if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err == nil && sel.Matches(labels.Set(j.Spec.Template.Labels)) {
				bad("%s: its pods carry Deployment/%s's labels, so its Services would send them traffic", id, dep.Name)
			}
		}
		errs = append(errs, checkPod(id, &j.Spec.Template.Spec, false)...)
	}
	for _, s := range o.services {
		id := "Service/" + s.Name
		if len(s.Spec.Selector) == 0 {
			bad("%s: no selector", id)
			continue
		}
		pod := o.podSelected(labels.SelectorFromSet(s.Spec.Selector))
		if pod == nil {
			bad("%s: selector %v selects no pod of a Deployment", id, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				bad("%s: port name %q: %s", id, p.Name, msg)
			}
			if p.TargetPort.Type == intstr.String && !hasPort(pod, p.TargetPort.StrVal) {
				bad("%s: targetPort %q is no container port of the pods it selects", id, p.TargetPort.StrVal)
			}
		}
	}
	for _, p := range o.pdbs {
		id := "PodDisruptionBudget/" + p.Name
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() || o.podSelected(sel) == nil {
			bad("%s: selector %v selects no pod of a Deployment", id, p.Spec.Selector)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			bad("%s: set exactly one of minAvailable and maxUnavailable", id)
		}
	}
	for _, in := range o.ingresses {
		for _, rule := range in.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				b := path.Backend.Service
				if b == nil {
					bad("Ingress/%s: path %q has no service backend", in.Name, path.Path)
					continue
				}
				if s := o.service(b.Name); s == nil {
					bad("Ingress/%s: backend Service %q is not in the chart", in.Name, b.Name)
				} else if b.Port.Name != "" && !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == b.Port.Name }) {
					bad("Ingress/%s: Service %q has no port %q", in.Name, b.Name, b.Port.Name)
				}
			}
		}
	}
	for _, m := range o.monitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		var target *corev1.Service
		for _, s := range o.services {
			if err == nil && sel.Matches(labels.Set(s.Labels)) {
				if target != nil {
					bad("ServiceMonitor/%s: selects both Service/%s and Service/%s", m.Name, target.Name, s.Name)
				}
				target = s
			}
		}
		if target == nil {
			bad("ServiceMonitor/%s: selector selects no Service", m.Name)
			continue
		}
		for _, ep := range m.Spec.Endpoints {
			if !slices.ContainsFunc(target.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				bad("ServiceMonitor/%s: Service/%s has no port %q", m.Name, target.Name, ep.Port)
			}
		}
	}
	return errs
}

// checkPod checks what the API server would refuse in a pod spec and the
// chart's policy: every container runs as non-root on a read-only root file
// system with resources set; a server's containers have probes on ports
// that exist.
func checkPod(id string, pod *corev1.PodSpec, server bool) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(id+": "+format, args...)) }
	if len(pod.Containers) == 0 {
		bad("no containers")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		bad("pod securityContext.runAsNonRoot is not true")
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range pod.Containers {
		cid := "container " + c.Name
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			bad("%s: name: %s", cid, msg)
		}
		if c.Image == "" {
			bad("%s: no image", cid)
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				bad("%s: env %q: %s", cid, e.Name, msg)
			}
			if env[e.Name] {
				bad("%s: env %q set twice", cid, e.Name)
			}
			env[e.Name] = true
			if e.ValueFrom != nil && e.Value != "" {
				bad("%s: env %q has both value and valueFrom", cid, e.Name)
			}
		}
		for _, p := range c.Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				bad("%s: port name %q: %s", cid, p.Name, msg)
			}
			for _, msg := range validation.IsValidPortNum(int(p.ContainerPort)) {
				bad("%s: port %d: %s", cid, p.ContainerPort, msg)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				bad("%s: mounts volume %q, which the pod does not have", cid, m.Name)
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("%s: securityContext.readOnlyRootFilesystem is not true", cid)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("%s: securityContext.allowPrivilegeEscalation is not false", cid)
		}
		if len(c.Resources.Requests) == 0 || c.Resources.Limits.Memory().IsZero() {
			bad("%s: resources need requests and a memory limit", cid)
		}
		if !server {
			continue
		}
		for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				bad("%s: no HTTP %s probe", cid, name)
				continue
			}
			if port := p.HTTPGet.Port; port.Type == intstr.String && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal }) {
				bad("%s: %s probe's port %q is no port of the container", cid, name, port.StrVal)
			}
		}
	}
	return errs
}

func (o objects) podSelected(sel labels.Selector) *corev1.PodSpec {
	for _, d := range o.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return &d.Spec.Template.Spec
		}
	}
	return nil
}

func (o objects) service(name string) *corev1.Service {
	for _, s := range o.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func hasPort(pod *corev1.PodSpec, name string) bool {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}
