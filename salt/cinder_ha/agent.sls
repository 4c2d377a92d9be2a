{#- Guide step 1: the ocf:openstack:cinder-api resource agent, on every node that may run
    cinder-api. The guide downloads the retired openstack-resource-agents copy; this formula
    ships its own (salt://cinder_ha/files/ocf/cinder-api). Operators who host their own copy
    set pillar cinder_ha:agent:source (URL) and the then required cinder_ha:agent:source_hash
    (checked by cinder_ha.validate). Mode 0755 is the guide's `chmod a+rx`. #}
{%- import_yaml "cinder_ha/defaults.yaml" as defaults %}
{%- from "cinder_ha/map.jinja" import check, cinder_ha with context %}
include:
  - cinder_ha.validate
{%- if check.valid %}
{%- set agent = cinder_ha.agent %}
{%- set source = agent.get("source") or defaults.cinder_ha.agent_source %}

cinder_ha ocf agent installed:
  file.managed:
    - name: {{ (defaults.cinder_ha.agent_dir ~ "/cinder-api") | json }}
    - source: {{ source | json }}
{%- if agent.get("source_hash") %}
    - source_hash: {{ agent.source_hash | json }}
{%- endif %}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
    - require:
      - cinder_ha: cinder_ha pillar is valid
{%- endif %}
