{{/* Pieces of the Calico CRD schemas (structural schemas cannot use $ref). */}}

{{- define "palisade.calico.intOrString" -}}
x-kubernetes-int-or-string: true
anyOf:
  - type: integer
  - type: string
{{- end -}}

{{- define "palisade.calico.entityRule" -}}
type: object
properties:
  nets:
    type: array
    items:
      type: string
  notNets:
    type: array
    items:
      type: string
  selector:
    type: string
  notSelector:
    type: string
  namespaceSelector:
    type: string
  ports:
    type: array
    items:
      {{- include "palisade.calico.intOrString" . | nindent 6 }}
  notPorts:
    type: array
    items:
      {{- include "palisade.calico.intOrString" . | nindent 6 }}
  serviceAccounts:
    type: object
    properties:
      names:
        type: array
        items:
          type: string
      selector:
        type: string
  services:
    type: object
    properties:
      name:
        type: string
      namespace:
        type: string
{{- end -}}

{{- define "palisade.calico.icmp" -}}
type: object
properties:
  type:
    type: integer
  code:
    type: integer
{{- end -}}

{{- define "palisade.calico.rule" -}}
type: object
required: [action]
properties:
  action:
    type: string
    enum: [Allow, Deny, Log, Pass]
  ipVersion:
    type: integer
    enum: [4, 6]
  protocol:
    {{- include "palisade.calico.intOrString" . | nindent 4 }}
  notProtocol:
    {{- include "palisade.calico.intOrString" . | nindent 4 }}
  icmp:
    {{- include "palisade.calico.icmp" . | nindent 4 }}
  notICMP:
    {{- include "palisade.calico.icmp" . | nindent 4 }}
  source:
    {{- include "palisade.calico.entityRule" . | nindent 4 }}
  destination:
    {{- include "palisade.calico.entityRule" . | nindent 4 }}
  http:
    description: HTTP match (application layer policy); only on Allow rules.
    type: object
    properties:
      methods:
        type: array
        items:
          type: string
      paths:
        type: array
        items:
          type: object
          properties:
            exact:
              type: string
            prefix:
              type: string
  metadata:
    type: object
    properties:
      annotations:
        type: object
        additionalProperties:
          type: string
{{- end -}}
