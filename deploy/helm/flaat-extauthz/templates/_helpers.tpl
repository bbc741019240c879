{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "flaat-extauthz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flaat-extauthz.fullname" -}}
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

{{- define "flaat-extauthz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flaat-extauthz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flaat-extauthz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "flaat-extauthz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flaat-extauthz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flaat-extauthz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag; never a default. */}}
{{- define "flaat-extauthz.image" -}}
{{- $repo := required "image.repository is required: build and push the image yourself (docs/helm.md)" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- $tag := required "image.tag (or image.digest) is required" .Values.image.tag }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: latest is refused; pin an exact tag or a digest" }}
{{- end }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{- define "flaat-extauthz.secretDir" -}}/var/run/secrets/flaat-extauthz{{- end }}

{{/*
The configuration file: .Values.config with the listen addresses taken from .Values.ports
and each issuer's clientSecretKey turned into client_secret_file.
*/}}
{{- define "flaat-extauthz.config" -}}
{{- $c := .Values.config }}
{{- if not $c.issuers }}
{{- fail "config.issuers: at least one trusted issuer is required" }}
{{- end }}
{{- $server := deepCopy (default dict $c.server) }}
{{- range $k := list "grpc_listen" "http_listen" "admin_listen" }}
{{- if hasKey $server $k }}
{{- fail (printf "config.server.%s: set ports.* instead (the chart derives the listen addresses)" $k) }}
{{- end }}
{{- end }}
{{- $_ := set $server "grpc_listen" (printf ":%v" .Values.ports.grpc) }}
{{- $_ := set $server "http_listen" (printf ":%v" .Values.ports.http) }}
{{- $_ := set $server "admin_listen" (printf ":%v" .Values.ports.admin) }}
{{- $issuers := list }}
{{- range $i, $is := $c.issuers }}
{{- $out := omit $is "clientSecretKey" }}
{{- if $is.clientSecretKey }}
{{- if not $.Values.clientSecrets.existingSecret }}
{{- fail (printf "config.issuers[%d].clientSecretKey needs clientSecrets.existingSecret" $i) }}
{{- end }}
{{- if or (hasKey $is "client_secret") (hasKey $is "client_secret_file") }}
{{- fail (printf "config.issuers[%d]: clientSecretKey replaces client_secret and client_secret_file" $i) }}
{{- end }}
{{- $_ := set $out "client_secret_file" (printf "%s/%s" (include "flaat-extauthz.secretDir" $) $is.clientSecretKey) }}
{{- end }}
{{- $issuers = append $issuers $out }}
{{- end }}
{{- $doc := dict "server" $server "issuers" $issuers }}
{{- range $k := list "verification" "policy" "log" }}
{{- if hasKey $c $k }}
{{- $_ := set $doc $k (get $c $k) }}
{{- end }}
{{- end }}
{{- toYaml $doc }}
{{- end }}
