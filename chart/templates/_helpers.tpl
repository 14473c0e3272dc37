{{/*
Object names are fixed rather than release-derived: the agent, sc-job and the
docs refer to them by name (kubectl logs job/sc-job -n sc-system), and the
chart is installed once per cluster.
*/}}
{{- define "sc.agentName" -}}sc-agent{{- end -}}
{{- define "sc.jobName" -}}sc-job{{- end -}}
{{- define "sc.renderJobName" -}}sc-job-render{{- end -}}

{{- define "sc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sc-extension
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels must never change across upgrades. */}}
{{- define "sc.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
sc.image renders registry/repository:tag[@digest] for one of .Values.image.{agent,job,scctl}.
The tag falls back to the chart's appVersion so a released chart pulls the
images of its own release (make release stamps appVersion). A digest pins the
image: the runtime pulls by digest and the tag only tells a reader which
release it is, so a re-pushed tag cannot swap the code under a running agent.
*/}}
{{- define "sc.image" -}}
{{- $img := index .root.Values.image .name -}}
{{- $registry := default .root.Values.image.registry $img.registry -}}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- $ref := printf "%s:%s" $img.repository $tag -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" $registry $ref -}}
{{- end -}}
{{- if $img.digest -}}
{{- $ref = printf "%s@%s" $ref $img.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{- define "sc.pullPolicy" -}}
{{- $img := index .root.Values.image .name -}}
{{- default .root.Values.image.pullPolicy $img.pullPolicy -}}
{{- end -}}

{{/*
Pod Security "restricted" at pod and container level. Shared by every pod the
chart renders; the agent builds sc-job pods with the same settings.
*/}}
{{- define "sc.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sc.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sc.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The usernames the API server gives the chart's ServiceAccounts: admission
policies match requests on them.
*/}}
{{- define "sc.agentUser" -}}system:serviceaccount:{{ .Release.Namespace }}:{{ include "sc.agentName" . }}{{- end -}}
{{- define "sc.jobUser" -}}system:serviceaccount:{{ .Release.Namespace }}:{{ include "sc.jobName" . }}{{- end -}}

{{/*
sc.deniedNamespaces: where no connection ever renders, as a JSON list. The
release namespace holds the extension's own Secrets; the kube-* namespaces
hold the cluster's.
*/}}
{{- define "sc.deniedNamespaces" -}}
{{- $denied := list .Release.Namespace "kube-system" "kube-public" "kube-node-lease" -}}
{{- range .Values.deniedNamespaces }}{{ if not (has . $denied) }}{{ $denied = append $denied . }}{{ end }}{{ end -}}
{{- toJson $denied -}}
{{- end -}}

{{/*
sc.jobWriteNamespaces: the watched namespaces sc-job may write into (denied
ones removed), as a JSON list; empty when watchNamespaces is empty (all).
*/}}
{{- define "sc.jobWriteNamespaces" -}}
{{- $denied := include "sc.deniedNamespaces" . | fromJsonArray -}}
{{- $out := list -}}
{{- range .Values.watchNamespaces }}{{ if not (has . $denied) }}{{ $out = append $out . }}{{ end }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* sc.apiServerEgress: the NetworkPolicy egress rule to the API server. */}}
{{- define "sc.apiServerEgress" -}}
{{- $api := .Values.networkPolicy.apiServer -}}
# the API server
- ports:
    {{- range $api.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with $api.cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end -}}
