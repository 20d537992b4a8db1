{{- define "microservice.name" -}}
{{- .Values.service.name -}}
{{- end -}}

{{- define "microservice.labels" -}}
app.kubernetes.io/name: {{ include "microservice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/component: {{ ternary "web" "worker" .Values.service.expose }}
app.kubernetes.io/part-of: cloud-ops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "microservice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "microservice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The release must go to the namespace the EKS stack created for this service and environment. */}}
{{- define "microservice.checkNamespace" -}}
{{- $expected := printf "%s-%s" .Values.service.name .Values.environment -}}
{{- if ne .Release.Namespace $expected -}}
{{- fail (printf "namespace %q is not this service's namespace %q (<service>-<environment>, created by the EKS stack)" .Release.Namespace $expected) -}}
{{- end -}}
{{- end -}}

{{/*
The image the pods run: by digest when the deploy workflow resolved one (the tag it came from is
recorded as the app.kubernetes.io/version label), else by its immutable tag.
*/}}
{{- define "microservice.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end }}
