{{/*
Building blocks shared by the five ProbeLog gRPC services. Each service's templates call these
with its own block of values, so every service gets the same security context, probes, volumes
and rollout behaviour.

Common params:
  root        the chart's root context
  component   "orchestrator", "probe-runner", "clip-encoder", "descriptor-store" or "ranker"
  values      the service's block of values
  name        resource name (default "<fullname>-<component>")
  selector    extra selector labels
*/}}

{{/* Selector labels of one workload: the component's plus `selector`. */}}
{{- define "probelog.workloadSelectorLabels" -}}
{{ include "probelog.selectorLabels" . }}
{{- range $key, $value := (default dict .selector) }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/*
Deployment (or StatefulSet) of a ProbeLog gRPC service.
Extra params:
  kind            "Deployment" (default) or "StatefulSet"
  serviceName     a StatefulSet's headless Service; replicas: its pod count
  volumeClaimTemplates  a StatefulSet's PersistentVolumeClaim templates
  healthService   the grpc.health.v1 service name the readiness probe checks
  configChecksum  sha256 of the service's ConfigMap (checksum/config annotation)
  env             list of EnvVar added to the container (secrets, shard index)
  mountData       mount the read-only data volume at /data
  scaledExternally  leave `replicas` out (an autoscaler outside the chart's HPA owns it)
  volumes         extra volumes; volumeMounts: their mounts
*/}}
{{- define "probelog.grpcDeployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $name := default (include "probelog.componentName" .) .name -}}
{{- $tls := $root.Values.tls -}}
{{- $servesTls := include "probelog.servesTls" . -}}
{{- $publicTls := and (eq .component "orchestrator") $tls.enabled -}}
{{- $probePort := ternary $tls.healthPort $v.port (not (empty $servesTls)) -}}
{{- $kind := default "Deployment" .kind -}}
apiVersion: apps/v1
kind: {{ $kind }}
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
    {{- range $key, $value := (default dict .selector) }}
    {{ $key }}: {{ $value | quote }}
    {{- end }}
spec:
  {{- if eq $kind "StatefulSet" }}
  replicas: {{ .replicas }}
  serviceName: {{ .serviceName }}
  # The pods are independent shards: start and replace them all at once, not in order.
  podManagementPolicy: Parallel
  updateStrategy:
    type: RollingUpdate
  {{- else if not (or (dig "autoscaling" "enabled" false $v) .scaledExternally) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "probelog.workloadSelectorLabels" . | nindent 6 }}
  {{- if eq $kind "Deployment" }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      {{- if gt (int (dig "gpu" "count" 0 $v)) 0 }}
      # A GPU node rarely has a spare GPU for a surge pod: replace one pod at a time.
      maxSurge: 0
      maxUnavailable: 1
      {{- else }}
      maxSurge: 25%
      maxUnavailable: 0
      {{- end }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "probelog.labels" . | nindent 8 }}
        {{- range $key, $value := (default dict .selector) }}
        {{ $key }}: {{ $value | quote }}
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ .configChecksum }}
        {{- if and $root.Values.metrics.enabled $root.Values.metrics.scrapeAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $root.Values.metrics.port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "probelog.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- include "probelog.podSecurityContext" . | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "probelog.image" (dict "root" $root "image" $v.image "shared" true) }}
          imagePullPolicy: {{ include "probelog.imagePullPolicy" (dict "root" $root "image" $v.image "shared" true) }}
          args: ["serve", {{ .component | quote }}]
          ports:
            - name: grpc
              containerPort: {{ $v.port }}
              protocol: TCP
            {{- if $servesTls }}
            - name: grpc-health
              containerPort: {{ $tls.healthPort }}
              protocol: TCP
            {{- end }}
            {{- if $root.Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "probelog.componentName" . }}
          {{- with .env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          # Native gRPC probes (grpc.health.v1). Liveness asks for the server as a whole (""),
          # readiness for the service itself: it turns NOT_SERVING on SIGTERM, so the pod leaves
          # the Service's endpoints before the server stops.
          startupProbe:
            grpc:
              port: {{ $probePort }}
              service: {{ .healthService | quote }}
            {{- toYaml $v.probes.startup | nindent 12 }}
          livenessProbe:
            grpc:
              port: {{ $probePort }}
              service: ""
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ $probePort }}
              service: {{ .healthService | quote }}
            {{- toYaml $v.probes.readiness | nindent 12 }}
          resources:
            {{- $resources := deepCopy (default dict $v.resources) -}}
            {{- if gt (int (dig "gpu" "count" 0 $v)) 0 -}}
            {{- $gpu := dict $v.gpu.resourceName (int $v.gpu.count) -}}
            {{- $_ := set $resources "requests" (mustMergeOverwrite (default dict $resources.requests) $gpu) -}}
            {{- $_ := set $resources "limits" (mustMergeOverwrite (default dict $resources.limits) $gpu) -}}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- include "probelog.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if and .mountData $root.Values.data.existingClaim }}
            - name: data
              mountPath: /data
              readOnly: true
              {{- with $root.Values.data.subPath }}
              subPath: {{ . }}
              {{- end }}
            {{- end }}
            {{- if $publicTls }}
            - name: tls
              mountPath: {{ include "probelog.tlsDir" . }}
              readOnly: true
            {{- end }}
            {{- if $tls.internal.enabled }}
            - name: tls-internal
              mountPath: {{ include "probelog.internalTlsDir" . }}
              readOnly: true
            {{- end }}
            {{- with .volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
        {{- if and .mountData $root.Values.data.existingClaim }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ $root.Values.data.existingClaim }}
            readOnly: true
        {{- end }}
        {{- if $publicTls }}
        - name: tls
          secret:
            secretName: {{ required "tls.existingSecret is required when tls.enabled is true" $tls.existingSecret }}
        {{- end }}
        {{- if $tls.internal.enabled }}
        - name: tls-internal
          secret:
            secretName: {{ required "tls.internal.existingSecret is required when tls.internal.enabled is true" $tls.internal.existingSecret }}
        {{- end }}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- with .volumeClaimTemplates }}
  volumeClaimTemplates:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* ClusterIP Service of a ProbeLog gRPC service (the orchestrator's type is configurable);
with `headless`, one without a cluster IP, whose DNS names each pod of a StatefulSet. */}}
{{- define "probelog.grpcService" -}}
{{- $v := .values -}}
{{- $svc := default dict $v.service -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ default (include "probelog.componentName" .) .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
  {{- with $svc.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ default "ClusterIP" $svc.type }}
  {{- if .headless }}
  clusterIP: None
  {{- end }}
  {{- if and (eq (default "ClusterIP" $svc.type) "LoadBalancer") $svc.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml $svc.loadBalancerSourceRanges | nindent 4 }}
  {{- end }}
  selector:
    {{- include "probelog.workloadSelectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $v.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- if .root.Values.metrics.enabled }}
    - name: metrics
      port: {{ .root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- end -}}

{{/* PodDisruptionBudget for one workload. Extra param: selector labels via `selector`. */}}
{{- define "probelog.pdb" -}}
{{- $pdb := .values.pdb -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ default (include "probelog.componentName" .) .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "probelog.workloadSelectorLabels" . | nindent 6 }}
{{- end -}}

{{/* HorizontalPodAutoscaler for one Deployment. */}}
{{- define "probelog.hpa" -}}
{{- $hpa := .values.autoscaling -}}
{{- $name := default (include "probelog.componentName" .) .name -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $hpa.minReplicas }}
  maxReplicas: {{ $hpa.maxReplicas }}
  metrics:
    {{- with $hpa.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $hpa.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end -}}

{{/*
NetworkPolicy admitting, on the given ports, only pods of this release from the listed
components (`from`), or, with `anySource`, any peer (`peers`, empty: everyone).
Extra params: ports (list of port numbers), from (list of component names), anySource, peers,
extraIngress.
*/}}
{{- define "probelog.networkPolicy" -}}
{{- $ctx := . -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "probelog.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "probelog.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "probelog.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
  {{- if not (or .ports (and .metrics .root.Values.metrics.enabled .root.Values.metrics.networkPolicyFrom) .extraIngress) }}
  ingress: []
  {{- else }}
  ingress:
    {{- if .ports }}
    - ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if .anySource }}
      {{- with .peers }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- else }}
      from:
        {{- range .from }}
        - podSelector:
            matchLabels:
              {{- include "probelog.selectorLabels" (dict "root" $ctx.root "component" .) | nindent 14 }}
        {{- end }}
      {{- end }}
    {{- end }}
    {{- if and .metrics .root.Values.metrics.enabled .root.Values.metrics.networkPolicyFrom }}
    - ports:
        - port: {{ .root.Values.metrics.port }}
          protocol: TCP
      from:
        {{- toYaml .root.Values.metrics.networkPolicyFrom | nindent 8 }}
    {{- end }}
    {{- with .extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}
