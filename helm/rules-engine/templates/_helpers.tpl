{{/* Chart name, truncated to a DNS label. */}}
{{- define "rules-engine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "rules-engine.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rules-engine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Recommended labels (app.kubernetes.io/*). */}}
{{- define "rules-engine.labels" -}}
helm.sh/chart: {{ include "rules-engine.chart" . }}
{{ include "rules-engine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: rules-engine
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: stable across upgrades, never add to them. */}}
{{- define "rules-engine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rules-engine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rules-engine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rules-engine.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rules-engine.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the chart-made ConfigMap of one ruleset; call with (list $ $ruleset). */}}
{{- define "rules-engine.rulesetConfigMapName" -}}
{{- $root := index . 0 }}
{{- printf "%s-ruleset-%s" (include "rules-engine.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ConfigMap key of a ruleset file: keys cannot contain "/". */}}
{{- define "rules-engine.rulesetFileKey" -}}
{{- replace "/" "__" . }}
{{- end }}

{{/* True (non-empty) when rulesets come from ConfigMaps rather than the image. */}}
{{- define "rules-engine.rulesetsFromConfigMaps" -}}
{{- if or .Values.rulesets.files .Values.rulesets.existingConfigMaps }}true{{ end }}
{{- end }}

{{- define "rules-engine.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- printf "%s-redis" (include "rules-engine.fullname" .) }}
{{- end }}
{{- end }}

{{- define "rules-engine.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretKey }}
{{- else }}
{{- print "redis-url" }}
{{- end }}
{{- end }}

{{/* PromQL label matchers selecting this release's series. */}}
{{- define "rules-engine.promSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "namespace=%q,job=%q" .Release.Namespace (include "rules-engine.fullname" .) }}
{{- end }}
{{- end }}
