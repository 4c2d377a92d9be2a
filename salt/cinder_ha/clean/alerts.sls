{#- The Pacemaker alert agent and its spool of cinder_ha.alerts, once the CIB alert that calls
    the agent is gone (clean.cluster). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.clean.cluster

{{ tplroot }}-clean-alerts-agent-file-absent:
  file.absent:
    - name: {{ cinder_ha.alert_agent | json }}
    - require:
      - sls: {{ tplroot }}.clean.cluster

{{ tplroot }}-clean-alerts-spool-absent:
  file.absent:
    - name: {{ cinder_ha.alert_spool | json }}
    - require:
      - sls: {{ tplroot }}.clean.cluster
{%- endif %}
