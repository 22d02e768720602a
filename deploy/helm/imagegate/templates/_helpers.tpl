{{/* The name of every object: the release name. */}}
{{- define "imagegate.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imagegate.labels" -}}
app.kubernetes.io/name: imagegate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "imagegate.selectorLabels" -}}
app.kubernetes.io/name: imagegate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "imagegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "imagegate.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{- define "imagegate.tlsSecretName" -}}
{{- if .Values.tls.certManager.enabled -}}
{{ include "imagegate.fullname" . }}-tls
{{- else -}}
{{ required "tls.secretName is required without cert-manager" .Values.tls.secretName }}
{{- end -}}
{{- end -}}

{{/* Webhook rules: Pods and the controllers whose pod templates autogen covers. */}}
{{- define "imagegate.webhookRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end -}}

{{- define "imagegate.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      - {{ .Release.Namespace }}
      {{- range .Values.webhook.excludedNamespaces }}
      - {{ . }}
      {{- end }}
{{- end -}}

{{/* Non-empty when the /validate-policy webhook is registered: enabled, and not left to
Kyverno's own policy webhook. */}}
{{- define "imagegate.validatePolicies" -}}
{{- if .Values.validatePolicies.enabled -}}
{{- $kyverno := lookup "admissionregistration.k8s.io/v1" "ValidatingWebhookConfiguration" "" "kyverno-policy-validating-webhook-cfg" -}}
{{- if not (and .Values.validatePolicies.skipWhenKyvernoPresent $kyverno) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}
