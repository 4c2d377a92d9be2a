{#- Guide step 3: cinder.conf on every node, on today's option names (the guide's
    sql_connection, rabbit_host and notifier_strategy are migrated). cinder-api is the
    cluster's process: when its effective configuration changed, it is restarted through
    Pacemaker (never service.running), and only on the node where it runs. #}
{%- from "cinder_ha/map.jinja" import cinder_ha with context %}
include:
  - cinder_ha.validate

cinder.conf managed:
  cinder_conf.managed:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - require:
      - cinder_ha: cinder_ha pillar is valid

cinder-api restarted through the cluster after a config change:
  cinder_ha.restarted_through_cluster:
    - name: {{ cinder_ha.cluster.primitive_id | json }}
    - onchanges:
      - cinder_conf: cinder.conf managed
