{#- Guide step 1: the ocf:openstack:cinder-api resource agent, on every node that may run
    cinder-api (and, with pillar volume/scheduler, ocf:openstack:cinder-volume and
    cinder-scheduler, and the functions the agents share). The guide downloads the retired openstack-resource-agents copy; this formula
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
      - file: {{ tplroot }}-agent-functions-file-managed

{#- The functions every agent of the formula sources, beside them: a dot file, which Pacemaker
    does not list as an agent. #}
{{ tplroot }}-agent-functions-file-managed:
  file.managed:
    - name: {{ (cinder_ha.agent_dir ~ "/" ~ cinder_ha.agent_functions) | json }}
    - source: {{ ("salt://" ~ tplroot ~ "/" ~ cinder_ha.agent_functions_source) | json }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.validate
{%- for service in cinder_ha.service_agents %}

{#- ocf:openstack:{{ service }}: one agent, cinder-service, under the name of the service it runs #}
{{ tplroot }}-agent-{{ service }}-file-managed:
  file.managed:
    - name: {{ (cinder_ha.agent_dir ~ "/" ~ service) | json }}
    - source: {{ ("salt://" ~ tplroot ~ "/" ~ cinder_ha.service_agent_source) | json }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
    - require:
      - file: {{ tplroot }}-agent-functions-file-managed
{%- endfor %}

{#- ocf:openstack:haproxy: HAProxy on every controller in cluster:mode balanced (installed in
    every mode: a switch to balanced needs it on every node before the controller's CIB change) #}
{{ tplroot }}-agent-haproxy-file-managed:
  file.managed:
    - name: {{ (cinder_ha.agent_dir ~ "/haproxy") | json }}
    - source: {{ ("salt://" ~ tplroot ~ "/" ~ cinder_ha.haproxy_agent_source) | json }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
    - require:
      - file: {{ tplroot }}-agent-functions-file-managed
{%- endif %}
