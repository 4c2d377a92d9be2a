{#- The Pacemaker alert agent of the reactor path (see files/alert/cinder_ha_alert) and its
    spool directory (parameters alert_agent, alert_spool). The CIB alert object that calls it
    is declared with the cluster objects (cinder_ha.cluster_objects):
        alert <alert_id> <alert_agent> select resources
            attributes cinder_ha_resources="<primitive_id> <vip_id>"
            to <alert_spool>
    Removed by cinder_ha.clean. -#}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}

{{ tplroot }}-alerts-agent-file-managed:
  file.managed:
    - name: {{ cinder_ha.alert_agent | json }}
    - source: {{ ("salt://" ~ tplroot ~ "/" ~ cinder_ha.alert_agent_source) | json }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.validate

{{ tplroot }}-alerts-spool-directory:
  file.directory:
    - name: {{ cinder_ha.alert_spool | json }}
    - user: {{ cinder_ha.alert_spool_user | json }}
    - group: {{ cinder_ha.alert_spool_group | json }}
    - mode: '0750'
    - makedirs: True
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}
