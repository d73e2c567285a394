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
