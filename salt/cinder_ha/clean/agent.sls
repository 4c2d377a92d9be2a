{#- The resource agents of cinder_ha.agent (cinder-api, cinder-scheduler, cinder-volume, haproxy, their
    shared functions), once the resource is
    gone from the CIB and stopped on this node (clean.cluster: a stop runs the agent). Its
    folder stays (other agents of the provider may live there). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.clean.cluster

{{ tplroot }}-clean-agent-file-absent:
  file.absent:
    - name: {{ (cinder_ha.agent_dir ~ "/" ~ cinder_ha.agent_name) | json }}
    - require:
      - sls: {{ tplroot }}.clean.cluster
{%- for name in cinder_ha.service_agents + ["haproxy", cinder_ha.agent_functions] %}

{{ tplroot }}-clean-agent-{{ name.lstrip(".") }}-file-absent:
  file.absent:
    - name: {{ (cinder_ha.agent_dir ~ "/" ~ name) | json }}
    - require:
      - sls: {{ tplroot }}.clean.cluster
{%- endfor %}
{%- endif %}
