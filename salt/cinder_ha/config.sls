{#- Guide step 3: cinder.conf on every node, on today's option names (the guide's
    sql_connection, rabbit_host and notifier_strategy are migrated), after checking that
    cinder-api's Python can load the database URL's driver. cinder-api is the cluster's
    process: it is restarted through Pacemaker (never service.running), only on the node where
    it runs, and only when what it would read now differs from what it started with. The
    restart check runs on every apply (require, not onchanges): a drift undone in the same
    run restarts nothing, and a restart that failed earlier is retried. #}
{%- from "cinder_ha/map.jinja" import check, cinder_ha with context %}
include:
  - cinder_ha.validate
{%- if check.valid %}
{#- (an invalid pillar renders the validation state alone, with every problem listed) #}
{%- set primitive_id = cinder_ha.cluster.primitive_id %}

cinder.conf managed:
  cinder_conf.managed:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - binary: {{ (cinder_ha.agent.binary or cinder_ha.cinder_api_binary) | json }}
    - require:
      - cinder_ha: cinder_ha pillar is valid

cinder-api restarted through the cluster if its configuration changed:
  cinder_ha.restarted_through_cluster:
    - name: {{ primitive_id | json }}
    - config: {{ (cinder_ha.agent.config or cinder_ha.cinder_conf.path) | json }}
    - pid_file: {{ (cinder_ha.agent.pid or "/run/resource-agents/" ~ primitive_id ~ ".pid") | json }}
    - require:
      - cinder_conf: cinder.conf managed
{%- endif %}
