{{/*
Names and labels.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "probelog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>" (or fullnameOverride), at most 63 characters. */}}
{{- define "probelog.fullname" -}}
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

{{/* chart label value: "<name>-<version>". */}}
{{- define "probelog.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of a component's resources: "<fullname>-<component>". The prefix is cut to 37 characters
so that the component (at most 16), a "-headless" or a "-<shard>" suffix always fit in 63 and
no two components can end up with the same name.
Params: root, component.
*/}}
{{- define "probelog.componentName" -}}
{{- printf "%s-%s" (include "probelog.fullname" .root | trunc 37 | trimSuffix "-") .component -}}
{{- end -}}

{{/*
Selector labels of a component. They go into immutable selectors, so they hold nothing that
changes between releases (no version, no chart label).
Params: root, component.
*/}}
{{- define "probelog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "probelog.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
All labels of a component's resources.
Params: root, component.
*/}}
{{- define "probelog.labels" -}}
helm.sh/chart: {{ include "probelog.chart" .root }}
{{ include "probelog.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: probelog
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* The service account the pods run as. */}}
{{- define "probelog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "probelog.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference. A component's image fields override the shared `image` where not empty; the tag
defaults to the chart's appVersion.
Params: root, image (the component's image block), shared (true: inherit .Values.image).
*/}}
{{- define "probelog.image" -}}
{{- $img := .image -}}
{{- if .shared -}}
{{- $img = deepCopy .root.Values.image -}}
{{- range $key, $value := .image -}}
{{- if $value -}}
{{- $_ := set $img $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $repo := $img.repository -}}
{{- if $img.registry -}}
{{- $repo = printf "%s/%s" $img.registry $img.repository -}}
{{- end -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $img.tag | toString) -}}
{{- end -}}

{{/* Pull policy: the component's, else the shared one. Params: root, image, shared. */}}
{{- define "probelog.imagePullPolicy" -}}
{{- if .image.pullPolicy -}}
{{- .image.pullPolicy -}}
{{- else if .shared -}}
{{- .root.Values.image.pullPolicy -}}
{{- else -}}
IfNotPresent
{{- end -}}
{{- end -}}

{{/* Pod security context: the shared one with the component's merged over it. Params: root, values. */}}
{{- define "probelog.podSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .root.Values.podSecurityContext) (deepCopy (default dict .values.podSecurityContext))) -}}
{{- end -}}

{{/* Container security context: the shared one with the component's merged over it. Params: root, values. */}}
{{- define "probelog.containerSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .root.Values.containerSecurityContext) (deepCopy (default dict .values.containerSecurityContext))) -}}
{{- end -}}

{{/*
Addresses of the services, "host:port". Short Service names: every pod of the release lives in
the release's namespace. With internal TLS the certificates must name these hosts.
*/}}
{{- define "probelog.storeAddress" -}}
{{- printf "%s:%d" (include "probelog.componentName" (dict "root" . "component" "descriptor-store")) (int .Values.descriptorStore.port) -}}
{{- end -}}

{{- define "probelog.encoderAddress" -}}
{{- printf "%s:%d" (include "probelog.componentName" (dict "root" . "component" "clip-encoder")) (int .Values.clipEncoder.port) -}}
{{- end -}}

{{- define "probelog.runnerAddress" -}}
{{- printf "%s:%d" (include "probelog.componentName" (dict "root" . "component" "probe-runner")) (int .Values.probeRunner.port) -}}
{{- end -}}

{{/*
DNS name of ranker shard i's pod: "<statefulset>-<i>.<headless service>.<namespace>.svc.<domain>"
(the StatefulSet and its headless Service share the name). Params: root, shard.
*/}}
{{- define "probelog.rankerShardHost" -}}
{{- $name := include "probelog.componentName" (dict "root" .root "component" "ranker") -}}
{{- printf "%s-%v.%s.%s.svc.%s" $name .shard $name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* The ranker shards' address with {i} for the ordinal (PROBELOG_RANKER_DNS). */}}
{{- define "probelog.rankerDns" -}}
{{- printf "%s:%d" (include "probelog.rankerShardHost" (dict "root" . "shard" "{i}")) (int .Values.ranker.port) -}}
{{- end -}}

{{/* Where a ranker keeps its index files (PROBELOG_INDEX_DIR): the "index" volume. */}}
{{- define "probelog.rankerIndexDir" -}}
/var/lib/probelog/index
{{- end -}}

{{/* Triton's gRPC URL for the probe runner (PROBELOG_RUNNER_URL). */}}
{{- define "probelog.runnerUrl" -}}
{{- if .Values.probeRunner.runnerUrl -}}
{{- .Values.probeRunner.runnerUrl -}}
{{- else if .Values.triton.enabled -}}
{{- printf "triton://%s:%d" (include "probelog.componentName" (dict "root" . "component" "triton")) (int .Values.triton.ports.grpc) -}}
{{- else -}}
{{- fail "probeRunner.runnerUrl is required when triton.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/*
Redis.
*/}}

{{/* The descriptor store's PROBELOG_STORE_URL. */}}
{{- define "probelog.storeUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:%d/0" (include "probelog.componentName" (dict "root" . "component" "redis")) (int .Values.redis.port) -}}
{{- else if .Values.externalRedis.url -}}
{{- .Values.externalRedis.url -}}
{{- else -}}
{{- fail "externalRedis.url is required when redis.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Redis password; empty when there is none (external Redis without AUTH). */}}
{{- define "probelog.redisSecretName" -}}
{{- if .Values.redis.enabled -}}
{{- default (include "probelog.componentName" (dict "root" . "component" "redis")) .Values.redis.auth.existingSecret -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The key of the password in that Secret. */}}
{{- define "probelog.redisSecretKey" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecretPasswordKey -}}
{{- else -}}
{{- .Values.externalRedis.existingSecretPasswordKey -}}
{{- end -}}
{{- end -}}

{{/*
TLS.
*/}}

{{/* Mount points of the certificates. */}}
{{- define "probelog.tlsDir" -}}/etc/probelog/tls{{- end -}}
{{- define "probelog.internalTlsDir" -}}/etc/probelog/tls-internal{{- end -}}

{{/*
API keys of the public API.
*/}}
{{- define "probelog.apiKeysDir" -}}/etc/probelog/api-keys{{- end -}}
{{/* Where the web page finds the CA that verifies the orchestrator's certificate. */}}
{{- define "probelog.webSearchCaDir" -}}/etc/probelog/search-ca{{- end -}}

{{/* The Secret with the keys file: the given one or the generated one. */}}
{{- define "probelog.apiKeysSecretName" -}}
{{- .Values.auth.existingSecret | default (include "probelog.componentName" (dict "root" . "component" "api-keys")) -}}
{{- end -}}

{{/* "true" when the component's server serves TLS. Params: root, component. */}}
{{- define "probelog.servesTls" -}}
{{- if or .root.Values.tls.internal.enabled (and (eq .component "orchestrator") .root.Values.tls.enabled) -}}
true
{{- end -}}
{{- end -}}

{{/*
Environment of a ProbeLog service shared by all five: listen address, log level and TLS.
Params: root, component, port.
*/}}
{{- define "probelog.commonEnv" -}}
{{- $tls := .root.Values.tls -}}
PROBELOG_LISTEN_ADDRESS: {{ printf "[::]:%d" (int .port) | quote }}
PROBELOG_LOG_LEVEL: {{ .root.Values.logLevel | quote }}
PROBELOG_LOG_FORMAT: {{ .root.Values.logFormat | quote }}
{{- if .root.Values.tracing.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .root.Values.tracing.otlpEndpoint | quote }}
OTEL_EXPORTER_OTLP_INSECURE: {{ .root.Values.tracing.insecure | quote }}
OTEL_SERVICE_NAME: {{ printf "probelog-%s" .component | quote }}
{{- end }}
{{- if .root.Values.metrics.enabled }}
PROBELOG_METRICS_LISTEN_ADDRESS: {{ printf "[::]:%d" (int .root.Values.metrics.port) | quote }}
{{- end }}
{{- if and (eq .component "orchestrator") $tls.enabled }}
PROBELOG_TLS_CERT_FILE: {{ printf "%s/tls.crt" (include "probelog.tlsDir" .) | quote }}
PROBELOG_TLS_KEY_FILE: {{ printf "%s/tls.key" (include "probelog.tlsDir" .) | quote }}
{{- else if $tls.internal.enabled }}
PROBELOG_TLS_CERT_FILE: {{ printf "%s/tls.crt" (include "probelog.internalTlsDir" .) | quote }}
PROBELOG_TLS_KEY_FILE: {{ printf "%s/tls.key" (include "probelog.internalTlsDir" .) | quote }}
{{- end }}
{{- if $tls.internal.enabled }}
PROBELOG_TLS_CA_FILE: {{ printf "%s/ca.crt" (include "probelog.internalTlsDir" .) | quote }}
PROBELOG_TLS_CLIENT_CERT_FILE: {{ printf "%s/tls.crt" (include "probelog.internalTlsDir" .) | quote }}
PROBELOG_TLS_CLIENT_KEY_FILE: {{ printf "%s/tls.key" (include "probelog.internalTlsDir" .) | quote }}
{{- if and $tls.internal.mutual (ne .component "orchestrator") }}
PROBELOG_TLS_CLIENT_CA_FILE: {{ printf "%s/ca.crt" (include "probelog.internalTlsDir" .) | quote }}
{{- end }}
{{- end }}
{{- if and (eq .component "orchestrator") .root.Values.auth.enabled }}
PROBELOG_API_KEYS_FILE: {{ printf "%s/%s" (include "probelog.apiKeysDir" .) .root.Values.auth.existingSecretKey | quote }}
PROBELOG_AUTH_OPEN_REFLECTION: {{ .root.Values.auth.openReflection | quote }}
{{- end }}
{{- if include "probelog.servesTls" . }}
PROBELOG_HEALTH_LISTEN_ADDRESS: {{ printf "[::]:%d" (int $tls.healthPort) | quote }}
{{- end }}
{{- end -}}

{{/*
ConfigMap holding a ProbeLog service's environment. The Deployment's checksum/config annotation
is the hash of this rendering, so any change here rolls the pods.
Params: root, component, values (the service block), env (dict of the service's own settings;
null and "" values are left out, so the service's defaults apply). The service block's `env`
is merged last and wins.
*/}}
{{- define "probelog.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "probelog.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
{{- $data := include "probelog.commonEnv" (dict "root" .root "component" .component "port" .values.port) | fromYaml -}}
{{- range $name, $value := .env -}}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (empty $value))) -}}
{{- $_ := set $data $name $value -}}
{{- end -}}
{{- end -}}
{{- $data = mustMergeOverwrite $data (default dict .values.env) }}
data:
  {{- range $name, $value := $data }}
  {{ $name }}: {{ $value | toString | quote }}
  {{- end }}
{{- end -}}

{{/*
The bulk-indexing work queue (indexer.enabled): a Redis Stream in the store's Redis, reached by
the orchestrator (it queues) and the indexer pods (they claim).
*/}}

{{/* The queue's settings, as ConfigMap entries (the password comes from the Secret). */}}
{{- define "probelog.indexQueueEnv" -}}
PROBELOG_INDEX_QUEUE_URL: {{ include "probelog.storeUrl" . | quote }}
{{- if not .Values.redis.enabled }}
{{- with .Values.externalRedis.username }}
PROBELOG_INDEX_QUEUE_USERNAME: {{ . | quote }}
{{- end }}
{{- if .Values.externalRedis.cluster }}
PROBELOG_INDEX_QUEUE_CLUSTER: "true"
{{- end }}
{{- if .Values.externalRedis.tls.existingCaSecret }}
PROBELOG_INDEX_QUEUE_TLS_CA_FILE: {{ printf "/etc/probelog/redis-ca/%s" .Values.externalRedis.tls.caKey | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Adds to a workload's context (the dict probelog.grpcDeployment takes) what reaching the queue
needs: the password from the Redis Secret and the external Redis' CA. Renders nothing.
*/}}
{{- define "probelog.withIndexQueue" -}}
{{- $root := .root -}}
{{- $secret := include "probelog.redisSecretName" $root -}}
{{- if $secret -}}
{{- $ref := dict "secretKeyRef" (dict "name" $secret "key" (include "probelog.redisSecretKey" $root)) -}}
{{- $_ := set . "env" (append (default list .env) (dict "name" "PROBELOG_INDEX_QUEUE_PASSWORD" "valueFrom" $ref)) -}}
{{- end -}}
{{- if and (not $root.Values.redis.enabled) $root.Values.externalRedis.tls.existingCaSecret -}}
{{- $_ := set . "volumes" (append (default list .volumes) (dict "name" "redis-ca" "secret" (dict "secretName" $root.Values.externalRedis.tls.existingCaSecret))) -}}
{{- $_ := set . "volumeMounts" (append (default list .volumeMounts) (dict "name" "redis-ca" "mountPath" "/etc/probelog/redis-ca" "readOnly" true)) -}}
{{- end -}}
{{- end -}}

{{/* The orchestrator's indexing settings, which the indexer pods share so that both index alike. */}}
{{- define "probelog.indexingEnv" -}}
{{- $v := .Values.orchestrator -}}
{{- $env := dict
  "PROBELOG_RUNNER_ADDRESS" (include "probelog.runnerAddress" .)
  "PROBELOG_ENCODER_ADDRESS" (include "probelog.encoderAddress" .)
  "PROBELOG_STORE_ADDRESS" (include "probelog.storeAddress" .)
  "PROBELOG_RANKER_DNS" (include "probelog.rankerDns" .)
  "PROBELOG_RANKER_SHARDS" .Values.ranker.shards
  "PROBELOG_PROBE_SET_FILE" $v.probeSetFile
  "PROBELOG_DEFAULT_PROBE_SET" $v.defaultProbeSet
  "PROBELOG_BACKGROUND" $v.background
  "PROBELOG_CALIBRATION_K" $v.calibrationK
  "PROBELOG_R" $v.r
-}}
{{- toYaml $env -}}
{{- end -}}
