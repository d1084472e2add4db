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

{{/*
Server processes per pod (RULES_ENGINE_WORKERS): config.workers, or for "auto" one per CPU of
resources.limits.cpu (else requests.cpu), rounded up, at least 1. Not the server's own 0,
which counts the node's cores from inside a container.
*/}}
{{- define "rules-engine.workers" -}}
{{- $workers := .Values.config.workers }}
{{- if eq (toString $workers) "auto" }}
{{- $resources := .Values.resources | default dict }}
{{- $cpu := toString (get ($resources.limits | default dict) "cpu" | default "") }}
{{- if not $cpu }}
{{- $cpu = toString (get ($resources.requests | default dict) "cpu" | default "") }}
{{- end }}
{{- $cores := 1.0 }}
{{- if hasSuffix "m" $cpu }}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 }}
{{- else if $cpu }}
{{- $cores = float64 $cpu }}
{{- end }}
{{- max 1 (ceil $cores | int64) }}
{{- else }}
{{- int64 $workers }}
{{- end }}
{{- end }}

{{/* Fail on a TLS or client-CA setting that cannot work. */}}
{{- define "rules-engine.validateTls" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret with tls.crt and tls.key)" }}
{{- end }}
{{- $ca := .Values.tls.clientCA }}
{{- if and $ca.existingSecret $ca.existingConfigMap }}
{{- fail "tls.clientCA: set existingSecret or existingConfigMap, not both" }}
{{- end }}
{{- if and (or $ca.existingSecret $ca.existingConfigMap) (not .Values.tls.enabled) }}
{{- fail "tls.clientCA (mutual TLS) needs tls.enabled" }}
{{- end }}
{{- if and .Values.tls.probe.clientCertSecret (not (or $ca.existingSecret $ca.existingConfigMap)) }}
{{- fail "tls.probe.clientCertSecret is only used with mutual TLS (tls.clientCA)" }}
{{- end }}
{{- end }}

{{/* "true" when clients must present a certificate (mutual TLS). */}}
{{- define "rules-engine.mutualTls" -}}
{{- if and .Values.tls.enabled (or .Values.tls.clientCA.existingSecret .Values.tls.clientCA.existingConfigMap) }}true{{ end }}
{{- end }}

{{/*
A probe against grpc.health.v1: the kubelet's native gRPC probe with plaintext; with TLS, which
the native probe cannot do, an exec probe running the image's health check, which pins the
server's mounted certificate. Argument: (list $ service timeoutSeconds).
*/}}
{{- define "rules-engine.probeAction" -}}
{{- $ := index . 0 }}
{{- $service := index . 1 }}
{{- $timeout := index . 2 }}
{{- if $.Values.tls.enabled }}
exec:
  command:
    - python
    - /app/healthcheck.py
    - {{ $service | quote }}
    - --timeout
    - {{ $timeout | toString | quote }}
    - --tls-ca
    - {{ printf "%s/tls.crt" $.Values.tls.mountPath | quote }}
    {{- with $.Values.tls.probe.serverName }}
    - --tls-server-name
    - {{ . | quote }}
    {{- end }}
    {{- if include "rules-engine.mutualTls" $ }}
    {{- $dir := ternary "/etc/rules-engine/tls-probe" $.Values.tls.mountPath (ne $.Values.tls.probe.clientCertSecret "") }}
    - --tls-cert
    - {{ printf "%s/tls.crt" $dir | quote }}
    - --tls-key
    - {{ printf "%s/tls.key" $dir | quote }}
    {{- end }}
{{- else }}
grpc:
  port: {{ $.Values.ports.grpc }}
  service: {{ $service | quote }}
{{- end }}
{{- end }}
