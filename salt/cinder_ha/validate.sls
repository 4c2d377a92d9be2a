{#- First state of the formula: the whole pillar is checked before anything changes.
    Every other part of cinder_ha requires this SLS (`require: - sls: cinder_ha.validate`). #}
{%- set tplroot = tpldir.split("/")[0] %}
{{ tplroot }}-validate-pillar-valid:
  cinder_ha.pillar_valid: []
