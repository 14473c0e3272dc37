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
sc.image renders registry/repository:tag for one of .Values.image.{agent,job,scctl}.
The tag falls back to the chart's appVersion so a released chart pulls the
images of its own release (make release stamps appVersion).
*/}}
{{- define "sc.image" -}}
{{- $img := index .root.Values.image .name -}}
{{- $registry := default .root.Values.image.registry $img.registry -}}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
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
