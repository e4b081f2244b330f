{{- define "podiq.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podiq.operatorName" -}}
{{- printf "%s-operator" (include "podiq.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podiq.labels" -}}
app.kubernetes.io/name: podiq
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "podiq.operatorSelector" -}}
app.kubernetes.io/name: podiq
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Namespaces where task pods run: runtime.namespaces, else watchNamespaces, else the release's. */}}
{{- define "podiq.runtimeNamespaces" -}}
{{- $ns := .Values.runtime.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) -}}
{{- toJson $ns -}}
{{- end -}}

{{- define "podiq.clusterwide" -}}
{{- if empty .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* Whether the operator sets namespaces up itself: every namespace watched, and not turned off. */}}
{{- define "podiq.provision" -}}
{{- if and (include "podiq.clusterwide" .) .Values.runtime.provisionNamespaces -}}true{{- end -}}
{{- end -}}

{{- define "podiq.runtimeClusterRole" -}}
{{- printf "%s-runtime" (include "podiq.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "podiq.schedulerClusterRole" -}}
{{- printf "%s-scheduler" (include "podiq.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
