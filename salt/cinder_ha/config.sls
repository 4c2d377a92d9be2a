{#- Guide step 3: cinder.conf on every node, on today's option names (the guide's
    sql_connection, rabbit_host and notifier_strategy are migrated), after checking that
    cinder-api's Python can load the database URL's driver. cinder-api is the cluster's
    process: it is restarted through Pacemaker (never service.running), only on the node where
    it runs, and only when what it would read now differs from what it started with. The
    restart check runs on every apply (require, not onchanges): a drift undone in the same
    run restarts nothing, and a restart that failed earlier is retried.
    cinder_ha.clean leaves cinder.conf in place (cinder needs it without the cluster too). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
{#- (an invalid pillar renders the validation state alone, with every problem listed) #}
{%- set primitive_id = cinder_ha.cluster.primitive_id %}

{{ tplroot }}-config-cinder-conf-managed:
  cinder_conf.managed:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - binary: {{ (cinder_ha.agent.binary or cinder_ha.cinder_api_binary) | json }}
    - require:
      - sls: {{ tplroot }}.validate

{{ tplroot }}-config-cinder-api-restarted-through-cluster:
  cinder_ha.restarted_through_cluster:
    - name: {{ primitive_id | json }}
    - config: {{ (cinder_ha.agent.config or cinder_ha.cinder_conf.path) | json }}
    - pid_file: {{ (cinder_ha.agent.pid or cinder_ha.pid_dir ~ "/" ~ primitive_id ~ ".pid") | json }}
    - require:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed
{%- endif %}
