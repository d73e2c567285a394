{{/*
Checks that values.schema.json cannot express. Every problem is collected first; then one `fail`
lists them all, each naming the value at fault.
*/}}
{{- define "triton-lease.validate" -}}
{{- $errors := list -}}

{{- /* A repositoryName names one volume or S3 repository only. */ -}}
{{- $seen := dict -}}
{{- $repos := list -}}
{{- range $i, $r := (.Values.server.modelRepositories.volumes | default list) -}}
{{- $repos = append $repos (dict "name" $r.repositoryName "where" (printf "server.modelRepositories.volumes[%d]" $i)) -}}
{{- end -}}
{{- range $key := list "s3" "S3" -}}
{{- range $i, $r := (get $.Values.server.modelRepositories $key | default list) -}}
{{- $repos = append $repos (dict "name" $r.repositoryName "where" (printf "server.modelRepositories.%s[%d]" $key $i)) -}}
{{- end -}}
{{- end -}}
{{- range $repos -}}
{{- if hasKey $seen .name -}}
{{- $errors = append $errors (printf "repositoryName %q is used twice: %s and %s" .name (get $seen .name) .where) -}}
{{- else -}}
{{- $_ := set $seen .name .where -}}
{{- end -}}
{{- end -}}

{{- /* The lease's models: valid names, each installed once, model:// naming a configured repository. */ -}}
{{- $names := dict -}}
{{- range (include "triton-lease.models" . | fromJson).items -}}
{{- $where := printf "lease.models[%d]" (int .index) -}}
{{- if not (regexMatch "^[A-Za-z0-9_][A-Za-z0-9_.-]*$" .name) -}}
{{- $errors = append $errors (printf "%s: model name %q must be letters, digits, '_', '.' or '-' (spec %q)" $where .name .spec) -}}
{{- else if hasKey $names .name -}}
{{- $errors = append $errors (printf "%s: model name %q is already used by %s" $where .name (get $names .name)) -}}
{{- else -}}
{{- $_ := set $names .name $where -}}
{{- end -}}
{{- if hasPrefix "model://" .uri -}}
{{- $repo := regexReplaceAll "^model://([^/]*).*$" .uri "${1}" -}}
{{- $path := regexReplaceAll "^model://[^/]*/?" .uri "" -}}
{{- if not (hasKey $seen $repo) -}}
{{- $errors = append $errors (printf "%s: model %q names repository %q, which is not in server.modelRepositories.volumes, s3 or S3" $where .name $repo) -}}
{{- end -}}
{{- if eq (trimAll "/" $path) "" -}}
{{- $errors = append $errors (printf "%s: model %q: uri %q has no model path after the repository name" $where .name .uri) -}}
{{- end -}}
{{- else if not (regexMatch "^https?://[^/\\s]+" .uri) -}}
{{- $errors = append $errors (printf "%s: model %q: uri %q must start with http://, https:// or model://" $where .name .uri) -}}
{{- end -}}
{{- end -}}

{{- /* Settings that go together. */ -}}
{{- if and (eq .Values.modelRepository.type "existingClaim") (not .Values.modelRepository.existingClaim.claimName) -}}
{{- $errors = append $errors "modelRepository.existingClaim.claimName is required when modelRepository.type is existingClaim" -}}
{{- end -}}
{{- if eq .Values.modelRepository.type "existingClaim" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- $errors = append $errors (printf "replicaCount=%d with modelRepository.type=existingClaim: the replicas would share one repository folder on claim %q and delete each other's models; use replicaCount=1, or modelRepository.type=ephemeral (a claim per pod)" (int .Values.replicaCount) .Values.modelRepository.existingClaim.claimName) -}}
{{- end -}}
{{- $strategy := .Values.strategy | default dict -}}
{{- if and $strategy (ne (toString $strategy.type) "Recreate") -}}
{{- $rolling := $strategy.rollingUpdate | default dict -}}
{{- /* Kubernetes' default maxSurge is 25%, at least one pod. */ -}}
{{- $surge := ternary (toString $rolling.maxSurge) "25%" (hasKey $rolling "maxSurge") -}}
{{- if not (or (eq $surge "0") (eq $surge "0%")) -}}
{{- $errors = append $errors (printf "strategy surges (maxSurge %s) with modelRepository.type=existingClaim: during a rollout two pods would share claim %q; use strategy.type=Recreate, rollingUpdate.maxSurge=0, or leave strategy empty (Recreate)" $surge .Values.modelRepository.existingClaim.claimName) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (eq (toString (.Values.strategy | default dict).type) "Recreate") (.Values.strategy | default dict).rollingUpdate -}}
{{- $errors = append $errors "strategy.rollingUpdate must be empty when strategy.type is Recreate (Kubernetes refuses the Deployment)" -}}
{{- end -}}
{{- if .Values.progressDeadlineSeconds -}}
{{- $budget := include "triton-lease.startupBudget" . | int -}}
{{- if lt (int .Values.progressDeadlineSeconds) $budget -}}
{{- $errors = append $errors (printf "progressDeadlineSeconds=%d is shorter than the fetch and startup budgets (%d s: %s s to fetch, %s, plus Triton's startup probe triton.startupProbe); raise it, or set 0 to derive it" (int .Values.progressDeadlineSeconds) $budget (include "triton-lease.fetchBudget" .) (ternary "fetcher.sidecar.startupProbe" "fetcher.fetchBudgetSeconds" (eq .Values.fetcher.mode "sidecar"))) -}}
{{- end -}}
{{- end -}}
{{- range $key := (include "triton-lease.selectorKeys" . | fromJsonArray) -}}
{{- if hasKey ($.Values.podLabels | default dict) $key -}}
{{- $errors = append $errors (printf "podLabels: %q is a selector label the chart sets (the Deployment and Services select pods by it); remove it from podLabels" $key) -}}
{{- end -}}
{{- end -}}
{{- range $kind := list "requests" "limits" -}}
{{- $resources := get ($.Values.triton.resources | default dict) $kind | default dict -}}
{{- $gpus := get $resources "nvidia.com/gpu" -}}
{{- if and (hasKey $resources "nvidia.com/gpu") (ne (toString $gpus) (toString (int $.Values.triton.gpus))) -}}
{{- $errors = append $errors (printf "triton.resources.%s asks for %v nvidia.com/gpu but triton.gpus is %d: set the number of GPUs with triton.gpus only" $kind $gpus (int $.Values.triton.gpus)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.triton.preStopSleepSeconds (ge (int .Values.triton.preStopSleepSeconds) (int .Values.terminationGracePeriodSeconds)) -}}
{{- $errors = append $errors (printf "triton.preStopSleepSeconds=%d must be below terminationGracePeriodSeconds=%d, or Triton is killed before it stops serving" (int .Values.triton.preStopSleepSeconds) (int .Values.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (eq (toString .Values.podDisruptionBudget.minAvailable) "") (eq (toString .Values.podDisruptionBudget.maxUnavailable) "") -}}
{{- $errors = append $errors "podDisruptionBudget.enabled needs podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable" -}}
{{- end -}}
{{- if and .Values.fetcher.cache.enabled (eq .Values.fetcher.cache.type "existingClaim") (not .Values.fetcher.cache.existingClaim.claimName) -}}
{{- $errors = append $errors "fetcher.cache.existingClaim.claimName is required when fetcher.cache.enabled is true and fetcher.cache.type is existingClaim (or set fetcher.cache.type: hostPath)" -}}
{{- end -}}
{{- if and .Values.fetcher.caBundle.configMapName (not .Values.fetcher.caBundle.key) -}}
{{- $errors = append $errors "fetcher.caBundle.key is required when fetcher.caBundle.configMapName is set" -}}
{{- end -}}

{{- /* Sidecar mode needs native sidecars, and owns Triton's model control flags. */ -}}
{{- if eq .Values.fetcher.mode "sidecar" -}}
{{- if not (include "triton-lease.supportsNativeSidecars" .) -}}
{{- $errors = append $errors (printf "fetcher.mode=sidecar needs Kubernetes 1.29 or newer (native sidecar containers), but the version is %s: use fetcher.mode=init on this cluster (or, with `helm template`, pass --kube-version or set kubeVersionOverride to the target cluster's version)" (include "triton-lease.kubeVersion" .)) -}}
{{- end -}}
{{- $restricted := $.Values.fetcher.sidecar.modelControl.restrictedApis -}}
{{- range .Values.triton.extraArgs -}}
{{- if or (hasPrefix "--model-control-mode" .) (hasPrefix "--load-model" .) -}}
{{- $errors = append $errors (printf "triton.extraArgs: %q conflicts with fetcher.mode=sidecar, which runs Triton with --model-control-mode=explicit --load-model=*" .) -}}
{{- end -}}
{{- if or (hasPrefix "--http-restricted-api=" .) (hasPrefix "--grpc-restricted-protocol=" .) -}}
{{- $groups := regexReplaceAll "^--[a-z-]+=([^:]*):.*$" . "${1}" | splitList "," -}}
{{- range $groups -}}
{{- if has . $restricted -}}
{{- $errors = append $errors (printf "triton.extraArgs: a restriction of API group %q conflicts with fetcher.sidecar.modelControl.restrictedApis, which restricts it with the model-control key (Triton refuses a group in two restrictions)" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- if $errors -}}
{{- fail (printf "\n\nVALUES ERROR (%d):\n  - %s\n" (len $errors) (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}
