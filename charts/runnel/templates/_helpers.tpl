{{/* Chart name, for labels. */}}
{{- define "runnel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of the operator's object names. */}}
{{- define "runnel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the operator's Deployment, Service, Lease and RBAC objects. */}}
{{- define "runnel.operatorName" -}}
{{- printf "%s-operator" (include "runnel.fullname" .) }}
{{- end }}

{{/* Labels of the operator's pods and Service selector. */}}
{{- define "runnel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runnel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object the chart makes. */}}
{{- define "runnel.labels" -}}
{{ include "runnel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: runnel
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* Labels of the Cluster, Topic and User resources (not the operator's component). */}}
{{- define "runnel.resourceLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: runnel
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "runnel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "runnel.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "runnel.operatorImage" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The operator's --broker-image. */}}
{{- define "runnel.brokerImage" -}}
{{- printf "%s:%s" .Values.operator.brokerImage.repository (default .Chart.AppVersion .Values.operator.brokerImage.tag) }}
{{- end }}

{{/* "true" when the operator elects a leader: explicitly, or with more than one replica. */}}
{{- define "runnel.leaderElection" -}}
{{- if kindIs "bool" .Values.operator.leaderElection.enabled }}
{{- .Values.operator.leaderElection.enabled }}
{{- else }}
{{- gt (int .Values.operator.replicas) 1 }}
{{- end }}
{{- end }}

{{/* Namespace of the Cluster, Topics and Users: the watched one, or the release's. */}}
{{- define "runnel.resourceNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace }}
{{- end }}

{{/* Whether the chart's Cluster uses the operator-managed etcd. */}}
{{- define "runnel.managedEtcd" -}}
{{- if .Values.cluster.metadataStore.external.endpoints }}false{{ else }}true{{ end }}
{{- end }}

{{/*
With `cluster.security.authentication.serviceAccountTokens`: the
ServiceAccount the brokers run as, which is bound to system:auth-delegator
so they may create TokenReviews (`cluster.template.serviceAccountName`, or
`<cluster.name>-broker`, which the chart creates). Empty otherwise.
*/}}
{{- define "runnel.brokerServiceAccount" -}}
{{- $c := .Values.cluster }}
{{- $auth := dig "authentication" dict ($c.security | default dict) }}
{{- if and $c.enabled (dig "serviceAccountTokens" false $auth) }}
{{- default (printf "%s-broker" $c.name) (dig "serviceAccountName" "" ($c.template | default dict)) }}
{{- end }}
{{- end }}

{{/* The helm.sh/resource-policy annotation of the Cluster, Topics, Users and the brokers' ServiceAccount and TokenReview binding. */}}
{{- define "runnel.keepAnnotation" -}}
{{- if .Values.keepResources -}}
annotations:
  helm.sh/resource-policy: keep
{{- end }}
{{- end }}
