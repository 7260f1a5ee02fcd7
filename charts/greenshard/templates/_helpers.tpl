{{/*
Names and labels shared by every template. All helpers are prefixed "greenshard.".
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "greenshard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: fullnameOverride, else RELEASE-NAME, else RELEASE when it
already contains NAME. Truncated to 63 characters (a DNS label).
*/}}
{{- define "greenshard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "greenshard.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "greenshard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the operator pod (never change them: selectors are immutable). */}}
{{- define "greenshard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "greenshard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object of the release. */}}
{{- define "greenshard.labels" -}}
helm.sh/chart: {{ include "greenshard.chart" . }}
{{ include "greenshard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: greenshard
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "greenshard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "greenshard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image, repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "greenshard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The name of the metrics Service. */}}
{{- define "greenshard.metricsServiceName" -}}
{{- printf "%s-metrics" (include "greenshard.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The namespace of the carbon provider's Secret (default: the release namespace). */}}
{{- define "greenshard.carbonSecretNamespace" -}}
{{- default .Release.Namespace .Values.carbonProvider.secretRef.namespace }}
{{- end }}

{{/* The name of the Role and RoleBinding that read the carbon provider's Secret. */}}
{{- define "greenshard.carbonSecretRoleName" -}}
{{- printf "%s-carbon-secret" (include "greenshard.fullname" . | trunc 49 | trimSuffix "-") }}
{{- end }}

{{/*
The operator's memory in Mi, request = limit:
  baseMi + ceil(2^solver.maxQubits * bytesPerAmplitude / 2^20)
(2^n by repeated doubling: Sprig has no pow.)
*/}}
{{- define "greenshard.memoryMi" -}}
{{- $bytes := int64 .Values.resources.memory.bytesPerAmplitude }}
{{- range until (int .Values.solver.maxQubits) }}
{{- $bytes = mul $bytes 2 }}
{{- end }}
{{- $mi := div (add $bytes 1048575) 1048576 }}
{{- add (int64 .Values.resources.memory.baseMi) $mi }}
{{- end }}

{{/*
The solver process's memory bound in GiB (GREENSHARD_SOLVER_MEMORY_GIB): the container's memory
less the operator process's share, resources.memory.operatorMi.
*/}}
{{- define "greenshard.solverMemoryGiB" -}}
{{- $memory := .Values.resources.memory }}
{{- if ge (int64 $memory.operatorMi) (int64 $memory.baseMi) }}
{{- fail (printf "resources.memory.operatorMi (%v) must be less than resources.memory.baseMi (%v)" $memory.operatorMi $memory.baseMi) }}
{{- end }}
{{- $solverMi := sub (include "greenshard.memoryMi" . | int64) (int64 $memory.operatorMi) }}
{{- printf "%g" (divf $solverMi 1024) }}
{{- end }}

{{/* The name of the extender's Deployment and Service. */}}
{{- define "greenshard.extenderName" -}}
{{- printf "%s-extender" (include "greenshard.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/* The extender's pod labels (its own: neither the operator's Deployment nor its Services select them). */}}
{{- define "greenshard.extenderSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-extender" (include "greenshard.name" . | trunc 54 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the extender runs as (its own: it only lists and watches). */}}
{{- define "greenshard.extenderServiceAccountName" -}}
{{- if .Values.extender.serviceAccount.create }}
{{- default (include "greenshard.extenderName" .) .Values.extender.serviceAccount.name }}
{{- else }}
{{- required "extender.serviceAccount.name is required when extender.serviceAccount.create is false" .Values.extender.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The name of the secondary scheduler's objects (its Deployment, ServiceAccount, Lease ...). */}}
{{- define "greenshard.schedulerName" -}}
{{- printf "%s-scheduler" (include "greenshard.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{/* The secondary scheduler's pod labels (its own: no other selector of the chart matches them). */}}
{{- define "greenshard.schedulerSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-scheduler" (include "greenshard.name" . | trunc 53 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The extender URL the secondary scheduler calls. */}}
{{- define "greenshard.schedulerExtenderURL" -}}
{{- if .Values.scheduler.secondary.extenderURL }}
{{- .Values.scheduler.secondary.extenderURL }}
{{- else if .Values.extender.enabled }}
{{- printf "http://%s.%s.svc:%v" (include "greenshard.extenderName" .) .Release.Namespace .Values.extender.port }}
{{- else }}
{{- fail "scheduler.secondary.enabled needs the extender: set extender.enabled=true, or scheduler.secondary.extenderURL" }}
{{- end }}
{{- end }}
