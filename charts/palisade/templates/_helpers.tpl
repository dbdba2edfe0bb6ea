{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "palisade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "palisade.componentName" -}}
{{- printf "%s-%s" (include "palisade.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.controlPlane.name" -}}
{{- include "palisade.componentName" (dict "root" . "component" "control-plane") -}}
{{- end -}}

{{- define "palisade.node.name" -}}
{{- include "palisade.componentName" (dict "root" . "component" "node") -}}
{{- end -}}

{{- define "palisade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "palisade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: palisade
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "control-plane"). */}}
{{- define "palisade.componentLabels" -}}
{{ include "palisade.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of one component; never change these (selectors are immutable). */}}
{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palisade.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference from (dict "image" .Values.images.x "root" $). */}}
{{- define "palisade.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* DNS name of the control-plane Service. */}}
{{- define "palisade.controlPlane.host" -}}
{{- printf "%s.%s.svc" (include "palisade.controlPlane.name" .) .Release.Namespace -}}
{{- end -}}

{{/* Secret names of the server (control plane) and client (node) certificates. */}}
{{- define "palisade.tls.serverSecret" -}}
{{- if eq .Values.tls.source "existing" -}}
{{- required "tls.existing.serverSecret is required when tls.source=existing" .Values.tls.existing.serverSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "palisade.controlPlane.name" .) -}}
{{- end -}}
{{- end -}}

{{- define "palisade.tls.clientSecret" -}}
{{- if eq .Values.tls.source "existing" -}}
{{- required "tls.existing.clientSecret is required when tls.source=existing" .Values.tls.existing.clientSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "palisade.node.name" .) -}}
{{- end -}}
{{- end -}}

{{/* Name of the ConfigMap the chart makes from ruleset.files. */}}
{{- define "palisade.ruleset.configMapName" -}}
{{- printf "%s-ruleset" (include "palisade.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Shared restricted securityContext of every Palisade container. */}}
{{- define "palisade.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
