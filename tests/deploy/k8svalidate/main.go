// k8svalidate: offline validation of rendered Kubernetes manifests (kustomize build output),
// for the deploy check (tests/deploy/check-deploy.sh). No cluster and no schema download:
//
//   - built-in kinds (Deployment, ServiceAccount, ConfigMap, Secret, PodDisruptionBudget,
//     Namespace) are decoded strictly with the k8s.io/api types: an unknown or duplicated field,
//     or a value of the wrong type, is an error (what `kubectl apply --validate=strict` reports);
//   - custom resources are checked against the openAPIV3Schema of their CustomResourceDefinition
//     (-crd FILE, e.g. KEDA's own CRDs), the way the API server's structural schema validation
//     does for types, required fields, enums, patterns and unknown fields; CEL rules
//     (x-kubernetes-validations) are not evaluated — the ones we depend on are re-checked below;
//   - then Switchyard's own rules: cross-references resolve, pods meet the "restricted" Pod
//     Security Standard, probes and resources are set, the worker's grace period covers its
//     shutdown settings, the KEDA trigger reads variables the worker really has, and so on.
//
// With -env-dir DIR it also writes, per container, the SWITCHYARD_* environment the container
// would get (env + envFrom ConfigMaps/Secrets of the render) as DIR/<deployment>.<container>.env,
// one NAME=value per line, so the check can run the real binaries against it.
//
// Exit status: 0 valid, 1 invalid (every problem is printed), 2 usage or I/O error.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// object is one document of the render: its raw JSON, its generic form and, for built-in
// kinds, the typed object.
type object struct {
	raw     []byte
	generic map[string]any
	gvk     schema.GroupVersionKind
	name    string
	ns      string
	typed   runtime.Object
}

func (o *object) ref() string { return o.gvk.Kind + "/" + o.name }

type validator struct {
	problems  []string
	notes     []string
	objects   []*object
	crds      map[schema.GroupVersionKind]map[string]any // GVK → openAPIV3Schema
	decoder   runtime.Decoder
	external  map[string]bool // "Secret/name" objects that exist outside the render
	imageBins map[string]bool // absolute paths the image provides (empty: not checked)
	agnostic  bool            // the render must not set namespaces
}

func (v *validator) fail(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// loadCRD reads a CustomResourceDefinition file and remembers the schema of each version.
func (v *validator) loadCRD(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if crd["kind"] != "CustomResourceDefinition" {
		return fmt.Errorf("%s: not a CustomResourceDefinition", path)
	}
	spec, _ := crd["spec"].(map[string]any)
	group, _ := spec["group"].(string)
	names, _ := spec["names"].(map[string]any)
	kind, _ := names["kind"].(string)
	versions, _ := spec["versions"].([]any)
	for _, vv := range versions {
		ver, _ := vv.(map[string]any)
		name, _ := ver["name"].(string)
		if served, _ := ver["served"].(bool); !served {
			continue
		}
		sch, _ := ver["schema"].(map[string]any)
		open, _ := sch["openAPIV3Schema"].(map[string]any)
		if open == nil {
			return fmt.Errorf("%s: version %s has no openAPIV3Schema", path, name)
		}
		v.crds[schema.GroupVersionKind{Group: group, Version: name, Kind: kind}] = open
	}
	return nil
}

// readRender splits the multi-document YAML and decodes every document.
func (v *validator) readRender(r io.Reader) error {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			v.fail("YAML document: %v", err)
			continue
		}
		if string(js) == "null" {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var gen map[string]any
		if err := dec.Decode(&gen); err != nil {
			v.fail("document is not an object: %v", err)
			continue
		}
		o := &object{raw: js, generic: gen}
		apiVersion, _ := gen["apiVersion"].(string)
		kind, _ := gen["kind"].(string)
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil || kind == "" {
			v.fail("document without a valid apiVersion/kind: %q %q", apiVersion, kind)
			continue
		}
		o.gvk = gv.WithKind(kind)
		if md, ok := gen["metadata"].(map[string]any); ok {
			o.name, _ = md["name"].(string)
			o.ns, _ = md["namespace"].(string)
		}
		v.objects = append(v.objects, o)
	}
}

// checkSchemas: strict typed decoding for built-ins, structural schema for custom resources.
func (v *validator) checkSchemas() {
	for _, o := range v.objects {
		if sch, ok := v.crds[o.gvk]; ok {
			v.checkStructural(o.ref(), o.generic, sch, "")
			// metadata of a custom resource is ObjectMeta: decode it strictly too.
			if md, ok := o.generic["metadata"]; ok {
				b, _ := json.Marshal(md)
				var om metav1.ObjectMeta
				if err := strictJSON(b, &om); err != nil {
					v.fail("%s: metadata: %v", o.ref(), err)
				}
			}
			continue
		}
		obj, gvk, err := v.decoder.Decode(o.raw, nil, nil)
		if err != nil {
			if runtime.IsNotRegisteredError(err) {
				v.fail("%s (%s): no schema for this kind: add its API group to k8svalidate or its CRD with -crd",
					o.ref(), o.gvk.GroupVersion())
			} else {
				v.fail("%s: %v", o.ref(), err)
			}
			continue
		}
		if *gvk != o.gvk {
			v.fail("%s: decoded as %v", o.ref(), gvk)
		}
		o.typed = obj
	}
}

func strictJSON(b []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// checkStructural validates value against an OpenAPI v3 structural schema (the subset CRDs
// use): type, properties, required, additionalProperties, items, enum, pattern, min/max
// lengths, items and values, nullable, x-kubernetes-int-or-string and
// x-kubernetes-preserve-unknown-fields. Unknown fields are errors, as the API server's strict
// field validation reports them.
func (v *validator) checkStructural(ref string, value any, sch map[string]any, path string) {
	where := path
	if where == "" {
		where = "."
	}
	if value == nil {
		if n, _ := sch["nullable"].(bool); !n && len(sch) > 0 {
			v.fail("%s: %s: null is not allowed", ref, where)
		}
		return
	}
	if ios, _ := sch["x-kubernetes-int-or-string"].(bool); ios {
		switch x := value.(type) {
		case string:
		case json.Number:
			if _, err := x.Int64(); err != nil {
				v.fail("%s: %s: must be an integer or a string", ref, where)
			}
		default:
			v.fail("%s: %s: must be an integer or a string", ref, where)
		}
		return
	}
	preserve, _ := sch["x-kubernetes-preserve-unknown-fields"].(bool)
	typ, _ := sch["type"].(string)
	if enum, ok := sch["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(value) {
				found = true
			}
		}
		if !found {
			v.fail("%s: %s: %v is not one of %v", ref, where, value, enum)
		}
	}
	switch typ {
	case "object":
		m, ok := value.(map[string]any)
		if !ok {
			v.fail("%s: %s: must be an object", ref, where)
			return
		}
		props, _ := sch["properties"].(map[string]any)
		req, _ := sch["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				v.fail("%s: %s: required field %q is missing", ref, where, r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := path + "." + k
			if path == "" && k == "metadata" {
				continue // ObjectMeta: decoded strictly by the caller, as the API server does
			}
			if ps, ok := props[k].(map[string]any); ok {
				v.checkStructural(ref, m[k], ps, sub)
				continue
			}
			switch ap := sch["additionalProperties"].(type) {
			case map[string]any:
				v.checkStructural(ref, m[k], ap, sub)
				continue
			case bool:
				if ap {
					continue
				}
			}
			if !preserve {
				v.fail("%s: %s: unknown field", ref, sub)
			}
		}
		v.checkCount(ref, where, len(m), sch, "minProperties", "maxProperties")
	case "array":
		a, ok := value.([]any)
		if !ok {
			v.fail("%s: %s: must be an array", ref, where)
			return
		}
		v.checkCount(ref, where, len(a), sch, "minItems", "maxItems")
		if items, ok := sch["items"].(map[string]any); ok {
			for i, e := range a {
				v.checkStructural(ref, e, items, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case "string":
		s, ok := value.(string)
		if !ok {
			v.fail("%s: %s: must be a string", ref, where)
			return
		}
		v.checkCount(ref, where, len([]rune(s)), sch, "minLength", "maxLength")
		if p, ok := sch["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err == nil && !re.MatchString(s) {
				v.fail("%s: %s: %q does not match %s", ref, where, s, p)
			}
		}
	case "integer", "number":
		n, ok := value.(json.Number)
		if !ok {
			v.fail("%s: %s: must be a number", ref, where)
			return
		}
		f, _ := n.Float64()
		if typ == "integer" {
			if _, err := n.Int64(); err != nil {
				v.fail("%s: %s: must be an integer", ref, where)
			}
		}
		if mn, ok := sch["minimum"].(float64); ok && f < mn {
			v.fail("%s: %s: %v is below the minimum %v", ref, where, f, mn)
		}
		if mx, ok := sch["maximum"].(float64); ok && f > mx {
			v.fail("%s: %s: %v is above the maximum %v", ref, where, f, mx)
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			v.fail("%s: %s: must be a boolean", ref, where)
		}
	case "":
		// No type: anything (only with x-kubernetes-preserve-unknown-fields in structural schemas).
	}
}

func (v *validator) checkCount(ref, where string, n int, sch map[string]any, minKey, maxKey string) {
	if mn, ok := sch[minKey].(float64); ok && float64(n) < mn {
		v.fail("%s: %s: %d < %s %v", ref, where, n, minKey, mn)
	}
	if mx, ok := sch[maxKey].(float64); ok && float64(n) > mx {
		v.fail("%s: %s: %d > %s %v", ref, where, n, maxKey, mx)
	}
}

// ---- Switchyard's rules --------------------------------------------------------------------

func (v *validator) find(kind, name string) *object {
	for _, o := range v.objects {
		if o.gvk.Kind == kind && o.name == name {
			return o
		}
	}
	return nil
}

func (v *validator) exists(kind, name string) bool {
	return v.find(kind, name) != nil || v.external[kind+"/"+name]
}

// undecoded: some object of this kind failed strict decoding (its problems are reported
// already; cross-reference checks would only repeat them).
func (v *validator) undecoded(kind string) bool {
	for _, o := range v.objects {
		if o.gvk.Kind == kind && o.typed == nil {
			return true
		}
	}
	return false
}

func (v *validator) checkMeta() {
	seen := map[string]bool{}
	namespaces := map[string]bool{}
	for _, o := range v.objects {
		key := o.gvk.GroupKind().String() + "/" + o.name
		if seen[key] {
			v.fail("%s: defined twice", o.ref())
		}
		seen[key] = true
		for _, msg := range validation.IsDNS1123Subdomain(o.name) {
			v.fail("%s: name: %s", o.ref(), msg)
		}
		if md, ok := o.generic["metadata"].(map[string]any); ok {
			if l, ok := md["labels"].(map[string]any); ok {
				for k, val := range l {
					for _, msg := range validation.IsQualifiedName(k) {
						v.fail("%s: label key %q: %s", o.ref(), k, msg)
					}
					s, _ := val.(string)
					for _, msg := range validation.IsValidLabelValue(s) {
						v.fail("%s: label %s value %q: %s", o.ref(), k, s, msg)
					}
				}
			}
		}
		if o.gvk.Kind == "Namespace" {
			continue
		}
		if v.agnostic && o.ns != "" {
			v.fail("%s: sets namespace %q; the base must stay namespace-agnostic", o.ref(), o.ns)
		}
		if !v.agnostic {
			if o.ns == "" {
				v.fail("%s: no namespace", o.ref())
			}
			namespaces[o.ns] = true
		}
	}
	for ns := range namespaces {
		if !v.exists("Namespace", ns) {
			v.notes = append(v.notes, fmt.Sprintf("namespace %q is not created by this render", ns))
		}
	}
}

// envOf returns the environment a container gets from env and envFrom, resolved against the
// render's ConfigMaps and Secrets (variables of objects outside the render are missing; other
// downward-API values are "<field PATH>"). podName stands in for metadata.name.
func (v *validator) envOf(podName string, c *corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			if o := v.find("ConfigMap", ef.ConfigMapRef.Name); o != nil {
				for k, val := range o.typed.(*corev1.ConfigMap).Data {
					env[ef.Prefix+k] = val
				}
			}
		case ef.SecretRef != nil:
			if o := v.find("Secret", ef.SecretRef.Name); o != nil {
				s := o.typed.(*corev1.Secret)
				for k, val := range s.Data {
					env[ef.Prefix+k] = string(val)
				}
				for k, val := range s.StringData {
					env[ef.Prefix+k] = val
				}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = podName // what the kubelet would put there, for the env files
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "<field " + e.ValueFrom.FieldRef.FieldPath + ">"
		default:
			env[e.Name] = "<external>"
		}
	}
	return env
}

func durationMs(env map[string]string, name string, def int64) int64 {
	if s, ok := env[name]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func (v *validator) checkDeployments(envDir string) {
	for _, o := range v.objects {
		d, ok := o.typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		ref := o.ref()
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || d.Spec.Selector == nil {
			v.fail("%s: bad selector: %v", ref, err)
		} else if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			v.fail("%s: selector %s does not match the pod template's labels %v", ref, sel, d.Spec.Template.Labels)
		}
		ps := &d.Spec.Template.Spec
		if ps.ServiceAccountName == "" || !v.exists("ServiceAccount", ps.ServiceAccountName) {
			v.fail("%s: serviceAccountName %q is not in the render", ref, ps.ServiceAccountName)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			v.fail("%s: automountServiceAccountToken must be false (the binaries never call the Kubernetes API)", ref)
		}
		if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
			v.fail("%s: enableServiceLinks must be false: a Service named switchyard-* would inject SWITCHYARD_*_SERVICE_HOST variables, which the binaries reject as unknown config keys", ref)
		}
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			v.fail("%s: host namespaces are not allowed", ref)
		}
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			v.fail("%s: pod securityContext.runAsNonRoot must be true", ref)
		}
		if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			v.fail("%s: pod securityContext.runAsUser must be a non-zero uid (the image's user is numeric)", ref)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			v.fail("%s: pod securityContext.seccompProfile must be RuntimeDefault", ref)
		}
		volumes := map[string]bool{}
		for _, vol := range ps.Volumes {
			volumes[vol.Name] = true
			if vol.HostPath != nil {
				v.fail("%s: hostPath volume %s", ref, vol.Name)
			}
			if vol.ConfigMap != nil && !v.exists("ConfigMap", vol.ConfigMap.Name) {
				v.fail("%s: volume %s: ConfigMap %q is not in the render", ref, vol.Name, vol.ConfigMap.Name)
			}
			if vol.Secret != nil && !v.exists("Secret", vol.Secret.SecretName) {
				v.fail("%s: volume %s: Secret %q is not in the render", ref, vol.Name, vol.Secret.SecretName)
			}
		}
		if len(ps.Containers) == 0 {
			v.fail("%s: no containers", ref)
		}
		for i := range ps.InitContainers {
			c := &ps.InitContainers[i]
			v.checkContainer(ref+" initContainer "+c.Name, c, volumes, true)
		}
		for i := range ps.Containers {
			c := &ps.Containers[i]
			cref := ref + " container " + c.Name
			v.checkContainer(cref, c, volumes, false)
			env := v.envOf(d.Name+"-6d5f7c9b8-x7k2p", c)
			if isWorker(c) {
				need := (durationMs(env, "SWITCHYARD_WORKER_SHUTDOWN_GRACE_MS", 30000)+
					durationMs(env, "SWITCHYARD_WORKER_KILL_GRACE_MS", 10000)+999)/1000 + 5
				if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds < need {
					v.fail("%s: terminationGracePeriodSeconds must be at least %d s (worker.shutdown.grace.ms + worker.kill.grace.ms + 5 s) so that stopping a pod lets local jobs finish or be cancelled cleanly", ref, need)
				}
			}
			if envDir != "" {
				if err := writeEnv(filepath.Join(envDir, d.Name+"."+c.Name+".env"), env); err != nil {
					v.fail("%s: %v", cref, err)
				}
			}
		}
	}
}

func isWorker(c *corev1.Container) bool {
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		if filepath.Base(a) == "switchyard-worker" {
			return true
		}
	}
	return false
}

func writeEnv(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		if strings.HasPrefix(k, "SWITCHYARD_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if strings.ContainsAny(env[k], "\n\x00") {
			return fmt.Errorf("%s: value contains a newline", k)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func (v *validator) checkExec(cref, what string, argv []string) {
	if len(argv) == 0 {
		v.fail("%s: %s: empty command", cref, what)
		return
	}
	if !strings.HasPrefix(argv[0], "/") {
		v.fail("%s: %s: %q is not an absolute path", cref, what, argv[0])
	} else if len(v.imageBins) > 0 && !v.imageBins[argv[0]] {
		v.fail("%s: %s: %s is not in the image (per the Dockerfile)", cref, what, argv[0])
	}
	for _, a := range argv[1:] {
		if strings.HasPrefix(a, "/usr/local/bin/") && len(v.imageBins) > 0 && !v.imageBins[a] {
			v.fail("%s: %s: %s is not in the image (per the Dockerfile)", cref, what, a)
		}
	}
}

// checkContainer: init containers get the same checks except probes (they have none).
func (v *validator) checkContainer(cref string, c *corev1.Container, volumes map[string]bool, init bool) {
	if c.Image == "" {
		v.fail("%s: no image", cref)
	} else if last := c.Image[strings.LastIndex(c.Image, "/")+1:]; !v.agnostic &&
		!strings.Contains(last, ":") && !strings.Contains(last, "@") {
		v.fail("%s: image %q has no tag or digest: set one in the overlay (images:)", cref, c.Image)
	}
	v.checkExec(cref, "command", append(append([]string{}, c.Command...), c.Args...))
	sc := c.SecurityContext
	switch {
	case sc == nil:
		v.fail("%s: no securityContext", cref)
	default:
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			v.fail("%s: allowPrivilegeEscalation must be false", cref)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			v.fail("%s: readOnlyRootFilesystem must be true", cref)
		}
		if sc.Privileged != nil && *sc.Privileged {
			v.fail("%s: privileged", cref)
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			len(sc.Capabilities.Add) != 0 {
			v.fail("%s: capabilities must drop ALL and add none", cref)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			v.fail("%s: runAsUser 0", cref)
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			v.fail("%s: no %s request", cref, res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			v.fail("%s: no %s limit", cref, res)
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}} {
		if init {
			break
		}
		if p.probe == nil {
			v.fail("%s: no %s", cref, p.name)
			continue
		}
		if p.probe.HTTPGet != nil || p.probe.TCPSocket != nil || p.probe.GRPC != nil {
			v.fail("%s: %s: the binaries serve no HTTP, TCP or gRPC endpoint; use an exec probe", cref, p.name)
		}
		if p.probe.Exec == nil {
			v.fail("%s: %s: not an exec probe", cref, p.name)
			continue
		}
		v.checkExec(cref, p.name, p.probe.Exec.Command)
		if p.probe.TimeoutSeconds < 2 {
			v.fail("%s: %s: timeoutSeconds %d is too short for a process start", cref, p.name, p.probe.TimeoutSeconds)
		}
	}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			v.fail("%s: volumeMount %s has no volume", cref, m.Name)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && !v.exists("ConfigMap", ef.ConfigMapRef.Name) {
			v.fail("%s: envFrom ConfigMap %q is not in the render", cref, ef.ConfigMapRef.Name)
		}
		if ef.SecretRef != nil && !v.exists("Secret", ef.SecretRef.Name) {
			v.fail("%s: envFrom Secret %q is not in the render", cref, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !v.exists("Secret", e.ValueFrom.SecretKeyRef.Name) {
			v.fail("%s: env %s: Secret %q is not in the render", cref, e.Name, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	// Secrets belong in Secrets: a ConfigMap (or a literal env value) must not carry one.
	for _, e := range c.Env {
		if e.ValueFrom == nil && looksSecret(e.Name) && e.Value != "" {
			v.fail("%s: env %s carries a secret as a literal; use a Secret", cref, e.Name)
		}
	}
}

// looksSecret: SWITCHYARD_* variables whose values `switchyard config` masks.
func looksSecret(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") ||
		n == "switchyard_database_url" || n == "switchyard_schema_registry_basic_auth" ||
		n == "switchyard_kafka_sasl_username"
}

func (v *validator) checkConfigMaps() {
	for _, o := range v.objects {
		cm, ok := o.typed.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		for k, val := range cm.Data {
			if looksSecret(k) {
				v.fail("%s: key %s holds a secret; put it in a Secret", o.ref(), k)
			}
			if k == "SWITCHYARD_DATABASE_URL" && strings.Contains(val, "@") {
				v.fail("%s: SWITCHYARD_DATABASE_URL with credentials in a ConfigMap", o.ref())
			}
		}
	}
}

func (v *validator) checkPDBs() {
	covered := map[string]bool{}
	for _, o := range v.objects {
		pdb, ok := o.typed.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || pdb.Spec.Selector == nil || sel.Empty() {
			v.fail("%s: needs a non-empty selector", o.ref())
			continue
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			v.fail("%s: set exactly one of minAvailable and maxUnavailable", o.ref())
		}
		matched := 0
		for _, d := range v.objects {
			if dep, ok := d.typed.(*appsv1.Deployment); ok && sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
				matched++
				covered[d.name] = true
			}
		}
		if matched != 1 && !v.undecoded("Deployment") {
			v.fail("%s: selector %s matches %d Deployments' pods (want exactly 1)", o.ref(), sel, matched)
		}
	}
	for _, o := range v.objects {
		if _, ok := o.typed.(*appsv1.Deployment); ok && !covered[o.name] && !v.undecoded("PodDisruptionBudget") {
			v.fail("%s: no PodDisruptionBudget covers its pods", o.ref())
		}
	}
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	if s == "" {
		if n, ok := cur.(json.Number); ok {
			return n.String()
		}
	}
	return s
}

func (v *validator) checkScaledObjects() {
	for _, o := range v.objects {
		if o.gvk.Group != "keda.sh" || o.gvk.Kind != "ScaledObject" {
			continue
		}
		ref := o.ref()
		spec, _ := o.generic["spec"].(map[string]any)
		target := str(spec, "scaleTargetRef", "name")
		if k := str(spec, "scaleTargetRef", "kind"); k != "" && k != "Deployment" {
			v.fail("%s: scaleTargetRef kind %s (expected a Deployment)", ref, k)
		}
		t := v.find("Deployment", target)
		if t == nil || t.typed == nil {
			v.fail("%s: scaleTargetRef %q is not a Deployment of the render", ref, target)
			continue
		}
		dep := t.typed.(*appsv1.Deployment)
		if dep.Spec.Replicas != nil {
			v.fail("%s: Deployment %s sets replicas while KEDA scales it: every apply would reset the replica count", ref, target)
		}
		// The CRD's CEL rule: minReplicaCount <= maxReplicaCount (default 100).
		mn, _ := strconv.Atoi(str(spec, "minReplicaCount"))
		mx := 100
		if s := str(spec, "maxReplicaCount"); s != "" {
			mx, _ = strconv.Atoi(s)
		}
		if mn > mx {
			v.fail("%s: minReplicaCount %d > maxReplicaCount %d", ref, mn, mx)
		}
		if mn < 1 {
			v.fail("%s: minReplicaCount must be at least 1: with no worker, remote jobs in flight are not tracked and kill requests wait", ref)
		}
		env := map[string]string{}
		for i := range dep.Spec.Template.Spec.Containers {
			for k, val := range v.envOf(dep.Name, &dep.Spec.Template.Spec.Containers[i]) {
				env[k] = val
			}
		}
		triggers, _ := spec["triggers"].([]any)
		for i, tr := range triggers {
			tm, _ := tr.(map[string]any)
			md, _ := tm["metadata"].(map[string]any)
			tref := fmt.Sprintf("%s trigger %d (%s)", ref, i, tm["type"])
			for k, val := range md {
				if strings.HasSuffix(k, "FromEnv") {
					name, _ := val.(string)
					if _, ok := env[name]; !ok {
						v.fail("%s: %s: %s is not in the environment of %s's containers", tref, k, name, target)
					}
				}
			}
			if tm["type"] == "kafka" {
				group := str(md, "consumerGroup")
				if n := str(md, "consumerGroupFromEnv"); n != "" {
					group = env[n]
				}
				if n := str(md, "consumerGroupFromEnv"); n != "SWITCHYARD_WORKER_GROUP_ID" && isWorkerDeployment(dep) {
					v.fail("%s: the consumer group must be the workers' (consumerGroupFromEnv: SWITCHYARD_WORKER_GROUP_ID), got %q", tref, group)
				}
				if str(md, "topic") != "" && isWorkerDeployment(dep) {
					v.fail("%s: workers consume one topic per cluster: leave topic empty so the lag of every topic of the group counts", tref)
				}
				if off := str(md, "offsetResetPolicy"); off != "earliest" {
					v.fail("%s: offsetResetPolicy must be earliest, as the worker's consumer (a partition without a committed offset is read from its start)", tref)
				}
			}
			if ar, ok := tm["authenticationRef"].(map[string]any); ok {
				name, _ := ar["name"].(string)
				kind, _ := ar["kind"].(string)
				if kind == "" {
					kind = "TriggerAuthentication"
				}
				if !v.exists(kind, name) {
					v.fail("%s: authenticationRef %s/%s is not in the render", tref, kind, name)
				}
			}
		}
	}
	for _, o := range v.objects {
		if o.gvk.Group != "keda.sh" || o.gvk.Kind != "TriggerAuthentication" {
			continue
		}
		spec, _ := o.generic["spec"].(map[string]any)
		refs, _ := spec["secretTargetRef"].([]any)
		for _, r := range refs {
			rm, _ := r.(map[string]any)
			name, _ := rm["name"].(string)
			key, _ := rm["key"].(string)
			if !v.exists("Secret", name) {
				v.fail("%s: secretTargetRef Secret %q is not in the render", o.ref(), name)
			} else if s := v.find("Secret", name); s != nil && s.typed != nil {
				sec := s.typed.(*corev1.Secret)
				if _, ok := sec.Data[key]; !ok {
					if _, ok := sec.StringData[key]; !ok {
						v.fail("%s: Secret %s has no key %s", o.ref(), name, key)
					}
				}
			}
		}
	}
}

func isWorkerDeployment(d *appsv1.Deployment) bool {
	for i := range d.Spec.Template.Spec.Containers {
		if isWorker(&d.Spec.Template.Spec.Containers[i]) {
			return true
		}
	}
	return false
}

func (v *validator) checkServiceAccounts() {
	for _, o := range v.objects {
		if sa, ok := o.typed.(*corev1.ServiceAccount); ok {
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				v.fail("%s: automountServiceAccountToken must be false", o.ref())
			}
		}
		if s, ok := o.typed.(*corev1.Secret); ok {
			for k, val := range s.Data {
				if strings.Contains(strings.ToUpper(string(val)), "CHANGE-ME") {
					v.notes = append(v.notes, fmt.Sprintf("%s: %s still holds a CHANGE-ME placeholder", o.ref(), k))
				}
			}
		}
	}
}

func main() {
	var crdFiles, external listFlag
	var imageBins string
	envDir := flag.String("env-dir", "", "write each container's SWITCHYARD_* environment to DIR/<deployment>.<container>.env")
	agnostic := flag.Bool("namespace-agnostic", false, "fail when an object sets a namespace (for bases)")
	flag.Var(&crdFiles, "crd", "a CustomResourceDefinition YAML file (repeatable)")
	flag.Var(&external, "external", "Kind/name of an object that exists outside the render (repeatable)")
	flag.StringVar(&imageBins, "image-files", "", "comma-separated absolute paths the container image provides")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: k8svalidate [options] RENDER.yaml|-\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	s := newScheme()
	v := &validator{
		crds:      map[schema.GroupVersionKind]map[string]any{},
		decoder:   serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		external:  map[string]bool{},
		imageBins: map[string]bool{},
		agnostic:  *agnostic,
	}
	for _, e := range external {
		v.external[e] = true
	}
	for _, p := range strings.Split(imageBins, ",") {
		if p != "" {
			v.imageBins[p] = true
		}
	}
	for _, f := range crdFiles {
		if err := v.loadCRD(f); err != nil {
			fmt.Fprintf(os.Stderr, "k8svalidate: %v\n", err)
			os.Exit(2)
		}
	}
	in := os.Stdin
	if name := flag.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8svalidate: %v\n", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	if err := v.readRender(in); err != nil {
		fmt.Fprintf(os.Stderr, "k8svalidate: %v\n", err)
		os.Exit(2)
	}
	if *envDir != "" {
		if err := os.MkdirAll(*envDir, 0o700); err != nil {
			fmt.Fprintf(os.Stderr, "k8svalidate: %v\n", err)
			os.Exit(2)
		}
	}
	v.checkSchemas()
	v.checkMeta()
	v.checkDeployments(*envDir)
	v.checkConfigMaps()
	v.checkPDBs()
	v.checkScaledObjects()
	v.checkServiceAccounts()
	kinds := map[string]int{}
	for _, o := range v.objects {
		kinds[o.gvk.Kind]++
	}
	var summary []string
	for k, n := range kinds {
		summary = append(summary, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(summary)
	for _, n := range v.notes {
		fmt.Printf("note: %s\n", n)
	}
	if len(v.problems) > 0 {
		for _, p := range v.problems {
			fmt.Printf("invalid: %s\n", p)
		}
		fmt.Printf("k8svalidate: %d problem(s) in %d objects (%s)\n", len(v.problems), len(v.objects), strings.Join(summary, ", "))
		os.Exit(1)
	}
	fmt.Printf("k8svalidate: %d objects valid (%s)\n", len(v.objects), strings.Join(summary, ", "))
}
