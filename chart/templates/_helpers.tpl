{{/* Names ------------------------------------------------------------------------------------ */}}

{{/* The chart name, limited to a DNS label. */}}
{{- define "triton-lease.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name of the release's resources. */}}
{{- define "triton-lease.fullname" -}}
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

{{/* Name of the ConfigMap holding the fetcher's values. */}}
{{- define "triton-lease.fetcherConfigName" -}}
{{- printf "%s-fetcher" (include "triton-lease.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/* Name of the Secret holding the model-control key (sidecar mode): the user's, or the generated one. */}}
{{- define "triton-lease.modelControlSecretName" -}}
{{- default (printf "%s-model-control" (include "triton-lease.fullname" . | trunc 49 | trimSuffix "-")) .Values.fetcher.sidecar.modelControl.secret.name -}}
{{- end -}}

{{/*
The generated model-control key, base64-encoded: the value already in the cluster's Secret when
there is one (so an upgrade keeps it), a new random one otherwise. Call with
(dict "existing" <lookup of the Secret> "key" <key>). `helm template` and `--dry-run=client`
cannot look up: they always show a new random value, which is never the one in the cluster.
*/}}
{{- define "triton-lease.modelControlValue" -}}
{{- $data := (.existing | default dict).data | default dict -}}
{{- if index $data .key -}}
{{- index $data .key -}}
{{- else -}}
{{- randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Name of the ServiceAccount the pod runs as. */}}
{{- define "triton-lease.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "triton-lease.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A pod volume name (a DNS label of at most 63 characters) for a named object: the prefix, the
readable part of the name and a hash of the whole name, so that names that differ only in
characters a label cannot hold (dots) or beyond the truncation still give different volumes.
Call with (list "prefix" "name").
*/}}
{{- define "triton-lease.volumeName" -}}
{{- $prefix := index . 0 -}}
{{- $name := index . 1 -}}
{{- printf "%s-%s-%s" $prefix ($name | replace "." "-" | trunc 40 | trimSuffix "-") ($name | sha256sum | trunc 8) -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------------- */}}

{{- define "triton-lease.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: only name and instance (selectors are immutable). */}}
{{- define "triton-lease.selectorLabels" -}}
app.kubernetes.io/name: {{ include "triton-lease.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard labels of every resource. */}}
{{- define "triton-lease.labels" -}}
helm.sh/chart: {{ include "triton-lease.chart" . }}
{{ include "triton-lease.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: triton-lease
{{- end -}}

{{/* Paths (the contract with the fetcher) ---------------------------------------------------- */}}

{{- define "triton-lease.modelVolumeMountPath" -}}/models{{- end -}}
{{- define "triton-lease.repositoryRoot" -}}/models/repository{{- end -}}
{{- define "triton-lease.fetcherConfigDir" -}}/etc/model-fetcher{{- end -}}
{{- define "triton-lease.secretsDir" -}}/var/run/secrets/model-fetcher{{- end -}}
{{- define "triton-lease.volumesDir" -}}/mnt/model-volumes{{- end -}}
{{- define "triton-lease.caBundleDir" -}}/etc/model-fetcher-ca{{- end -}}
{{- /* Sidecar mode: where the sidecar reads the model-control key, and the env var Triton's args expand. */ -}}
{{- define "triton-lease.modelControlDir" -}}/etc/model-fetcher-control{{- end -}}
{{- define "triton-lease.modelControlEnv" -}}TRITON_MODEL_CONTROL_KEY{{- end -}}
{{- /* Triton's writable home (an emptyDir): the home of the image's user, uid 1000. */ -}}
{{- define "triton-lease.tritonHome" -}}/home/triton-server{{- end -}}
{{- /* Sidecar mode: the status `model-fetcher status` reads, in the fetcher's own /tmp (one per pod). */ -}}
{{- define "triton-lease.sidecarStatusFile" -}}/tmp/model-fetcher-status.json{{- end -}}

{{/* Kubernetes version ------------------------------------------------------------------------ */}}

{{/* The cluster's version, or kubeVersionOverride (for `helm template` without --kube-version). */}}
{{- define "triton-lease.kubeVersion" -}}
{{- default .Capabilities.KubeVersion.Version .Values.kubeVersionOverride -}}
{{- end -}}

{{/* Native sidecars (init containers with restartPolicy Always): beta and on by default from 1.29. */}}
{{- define "triton-lease.supportsNativeSidecars" -}}
{{- if semverCompare ">=1.29-0" (include "triton-lease.kubeVersion" .) }}true{{ end -}}
{{- end -}}

{{/*
The pod template's checksum of the fetcher's configuration. In init mode the whole ConfigMap: any
change of the lease rolls the pods. In sidecar mode the lease's models are left out: the running
sidecar applies them from the updated ConfigMap, so only the repositories and security roll the pods.
*/}}
{{- define "triton-lease.configChecksum" -}}
{{- if eq .Values.fetcher.mode "sidecar" -}}
{{- $server := dict "modelRepositories" .Values.server.modelRepositories "security" .Values.server.security -}}
{{- dict "server" $server "fetcherMode" "sidecar" | toYaml | sha256sum -}}
{{- else -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* Values digested ------------------------------------------------------------------------- */}}

{{/* Every S3 repository: the `s3` and `S3` lists, as JSON {"items": [...]}. */}}
{{- define "triton-lease.s3Repositories" -}}
{{- $repos := concat (.Values.server.modelRepositories.s3 | default list) (.Values.server.modelRepositories.S3 | default list) -}}
{{- dict "items" $repos | toJson -}}
{{- end -}}

{{/* The sorted, deduplicated names of every Secret the fetcher may read, as JSON {"items": [...]}. */}}
{{- define "triton-lease.fetcherSecrets" -}}
{{- $names := list -}}
{{- range (.Values.server.modelRepositories.https | default list) -}}
{{- $names = append $names .secretName -}}
{{- end -}}
{{- range (include "triton-lease.s3Repositories" $ | fromJson).items -}}
{{- if .accessKey }}{{ $names = append $names .accessKey }}{{ end -}}
{{- if .secretKey }}{{ $names = append $names .secretKey }}{{ end -}}
{{- end -}}
{{- dict "items" ($names | uniq | sortAlpha) | toJson -}}
{{- end -}}

{{/*
The lease's models as JSON {"items": [{"name", "uri", "spec"}]}: a string spec
"name=<model>,uri=<uri>" is parsed here, a mapping is taken as it is.
*/}}
{{- define "triton-lease.models" -}}
{{- $models := list -}}
{{- range $i, $spec := (.Values.lease.models | default list) -}}
{{- if kindIs "string" $spec -}}
{{- $re := "^\\s*name=([^,]+),\\s*uri=(\\S+)" -}}
{{- $match := regexFind $re $spec -}}
{{- $name := regexReplaceAll $re $match "${1}" | trim -}}
{{- $uri := regexReplaceAll $re $match "${2}" | trim -}}
{{- $models = append $models (dict "name" $name "uri" $uri "spec" $spec "index" $i) -}}
{{- else -}}
{{- $models = append $models (dict "name" (toString $spec.name) "uri" (toString $spec.uri) "spec" (printf "name=%s,uri=%s" $spec.name $spec.uri) "index" $i) -}}
{{- end -}}
{{- end -}}
{{- dict "items" $models | toJson -}}
{{- end -}}

{{/* The fetcher's view of the values: the only keys the fetcher reads. */}}
{{- define "triton-lease.fetcherValues" -}}
{{- $server := dict "modelRepositories" .Values.server.modelRepositories "security" .Values.server.security -}}
{{- dict "server" $server "lease" (dict "models" (.Values.lease.models | default list)) | toYaml -}}
{{- end -}}

{{/* Images --------------------------------------------------------------------------------- */}}

{{/* repository@digest when a digest is set (the tag is then ignored), repository:tag otherwise. Call with (list image tag). */}}
{{- define "triton-lease.image" -}}
{{- $image := index . 0 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (index . 1) -}}
{{- end -}}
{{- end -}}

{{- define "triton-lease.tritonImage" -}}
{{- include "triton-lease.image" (list .Values.triton.image .Values.triton.image.tag) -}}
{{- end -}}

{{- define "triton-lease.fetcherImage" -}}
{{- include "triton-lease.image" (list .Values.fetcher.image (default .Chart.AppVersion .Values.fetcher.image.tag)) -}}
{{- end -}}

{{- define "triton-lease.testImage" -}}
{{- include "triton-lease.image" (list .Values.tests.image .Values.tests.image.tag) -}}
{{- end -}}

{{/* Rollouts and budgets ---------------------------------------------------------------------- */}}

{{/* A probe's budget in seconds: initialDelaySeconds + periodSeconds x failureThreshold. */}}
{{- define "triton-lease.probeBudget" -}}
{{- add (.initialDelaySeconds | default 0) (mul (.periodSeconds | default 10) (.failureThreshold | default 3)) -}}
{{- end -}}

{{/* Seconds the first fetch may take: the sidecar's startup probe budget, or fetcher.fetchBudgetSeconds in init mode. */}}
{{- define "triton-lease.fetchBudget" -}}
{{- if eq .Values.fetcher.mode "sidecar" -}}
{{- include "triton-lease.probeBudget" .Values.fetcher.sidecar.startupProbe -}}
{{- else -}}
{{- int .Values.fetcher.fetchBudgetSeconds -}}
{{- end -}}
{{- end -}}

{{/* Seconds from a pod's start until Triton must be ready: the fetch, then Triton's startup probe. */}}
{{- define "triton-lease.startupBudget" -}}
{{- add (include "triton-lease.fetchBudget" . | int) (include "triton-lease.probeBudget" .Values.triton.startupProbe | int) -}}
{{- end -}}

{{/* The Deployment's progressDeadlineSeconds: the value, or the startup budget plus 600 s for scheduling and image pulls. */}}
{{- define "triton-lease.progressDeadline" -}}
{{- if .Values.progressDeadlineSeconds -}}
{{- int .Values.progressDeadlineSeconds -}}
{{- else -}}
{{- add (include "triton-lease.startupBudget" . | int) 600 -}}
{{- end -}}
{{- end -}}

{{/*
The Deployment strategy, as JSON: the value, or one chosen for the repository volume and GPUs
(see `strategy` in values.yaml for the reasons).
*/}}
{{- define "triton-lease.strategy" -}}
{{- if .Values.strategy -}}
{{- .Values.strategy | toJson -}}
{{- else if eq .Values.modelRepository.type "existingClaim" -}}
{{- dict "type" "Recreate" | toJson -}}
{{- else if gt (int .Values.triton.gpus) 0 -}}
{{- dict "type" "RollingUpdate" "rollingUpdate" (dict "maxSurge" 0 "maxUnavailable" 1) | toJson -}}
{{- else -}}
{{- dict "type" "RollingUpdate" "rollingUpdate" (dict "maxSurge" 1 "maxUnavailable" 0) | toJson -}}
{{- end -}}
{{- end -}}

{{/* Pod labels ------------------------------------------------------------------------------- */}}

{{/* Label keys the Deployment's selector and the Services select by: podLabels may not set them. */}}
{{- define "triton-lease.selectorKeys" -}}
{{- list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" | toJson -}}
{{- end -}}

{{/* The pod's labels as YAML: the chart's, then podLabels (which may replace the informational ones). */}}
{{- define "triton-lease.podLabels" -}}
{{- $labels := include "triton-lease.labels" . | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/component" "triton" -}}
{{- $selectorKeys := include "triton-lease.selectorKeys" . | fromJsonArray -}}
{{- range $key, $value := (.Values.podLabels | default dict) -}}
{{- if not (has $key $selectorKeys) -}}
{{- $_ := set $labels $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* Volume claims ---------------------------------------------------------------------------- */}}

{{/*
The volumes[] entries the lease's models name, as JSON {"items": [...]}: only their claims are
mounted, so a claim that is missing blocks only the leases that use it.
*/}}
{{- define "triton-lease.usedVolumes" -}}
{{- $used := dict -}}
{{- range (include "triton-lease.models" . | fromJson).items -}}
{{- if hasPrefix "model://" .uri -}}
{{- $_ := set $used (regexReplaceAll "^model://([^/]*).*$" .uri "${1}") true -}}
{{- end -}}
{{- end -}}
{{- $volumes := list -}}
{{- range (.Values.server.modelRepositories.volumes | default list) -}}
{{- if hasKey $used .repositoryName -}}
{{- $volumes = append $volumes . -}}
{{- end -}}
{{- end -}}
{{- dict "items" $volumes | toJson -}}
{{- end -}}

{{/*
The Triton command's wrapper with fetcher.cache: $0 is the pod's lease lock file, "$@" Triton's args.
*/}}
{{- define "triton-lease.cacheLockScript" -}}
exec 9<"$0" && flock --shared 9 && exec tritonserver "$@"
{{- end }}
