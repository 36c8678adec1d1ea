{{- define "kmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kmon.fullname" -}}
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

{{- define "kmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kmon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kmon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kmon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kmon.socketPath" -}}
{{- printf "%s/kmon.sock" (trimSuffix "/" .Values.socket.dir) }}
{{- end }}

{{/* The consumers' container securityContext: no privilege of any kind. */}}
{{- define "kmon.consumerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65534
runAsGroup: 65534
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* --shm-budget: agent.shmBudget, else half of the agent's memory limit
(Ki/Mi/Gi/Ti or plain bytes), else 256M. */}}
{{- define "kmon.shmBudget" -}}
{{- $a := .Values.agent -}}
{{- if $a.shmBudget -}}
{{- $a.shmBudget -}}
{{- else -}}
{{- $lim := toString (dig "limits" "memory" "" ($a.resources | default dict)) -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $b := 0 -}}
{{- range $u, $m := $units -}}
{{- if hasSuffix $u $lim -}}
{{- $b = mul (trimSuffix $u $lim | int64) $m -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "^[0-9]+$" $lim -}}
{{- $b = $lim | int64 -}}
{{- end -}}
{{- if gt (int64 $b) 0 -}}
{{- div $b 2 -}}
{{- else -}}
256M
{{- end -}}
{{- end -}}
{{- end }}
