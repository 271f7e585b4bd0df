{{/* The release's resource names: <release>-latchkey unless the release is named latchkey. */}}
{{- define "latchkey.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "latchkey.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "latchkey.labels" -}}
{{ include "latchkey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "latchkey.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Fails the render, with what to set, when a required value is missing. */}}
{{- define "latchkey.secretName" -}}
{{- required "existingSecret is required: the name of a Secret holding LATCHKEY_SECRET, LATCHKEY_ADMIN_TOKEN and LATCHKEY_DATABASE_URL (see the chart's README)" .Values.existingSecret -}}
{{- end -}}

{{/* The environment both the server and the migration Job see. */}}
{{- define "latchkey.databaseEnv" -}}
- name: LATCHKEY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "latchkey.secretName" . }}
      key: {{ .Values.secretKeys.databaseURL }}
{{- end -}}

{{- define "latchkey.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
