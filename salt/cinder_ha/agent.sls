{#- Guide step 1: the ocf:openstack:cinder-api resource agent, on every node that may run
    cinder-api. The guide downloads the retired openstack-resource-agents copy; this formula
    ships its own (salt://<tplroot>/files/ocf/cinder-api, parameter agent_source). Operators
    who host their own copy set pillar cinder_ha:agent:source (URL) and the then required
    cinder_ha:agent:source_hash (checked by cinder_ha.validate). Mode 0755 is the guide's
    `chmod a+rx`. Removed by cinder_ha.clean. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
{%- set agent = cinder_ha.agent %}
{%- set source = agent.get("source") or "salt://" ~ tplroot ~ "/" ~ cinder_ha.agent_source %}

{{ tplroot }}-agent-file-managed:
  file.managed:
    - name: {{ (cinder_ha.agent_dir ~ "/" ~ cinder_ha.agent_name) | json }}
    - source: {{ source | json }}
{%- if agent.get("source_hash") %}
    - source_hash: {{ agent.source_hash | json }}
{%- endif %}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}
