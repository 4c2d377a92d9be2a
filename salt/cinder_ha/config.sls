{#- Guide step 3: cinder.conf on every node, on today's option names (the guide's
    sql_connection, rabbit_host and notifier_strategy are migrated), after checking that
    cinder-api's Python can load the database URL's driver. cinder-api is the cluster's
    process: it is restarted through Pacemaker (never service.running), only on the node where
    it runs, and only when what it would read now differs from what it started with. The
    restart check runs on every apply (require, not onchanges): a drift undone in the same
    run restarts nothing, and a restart that failed earlier is retried.
    The reactor's run (pillar cinder_ha_run:reason drift) corrects an outside edit: it restarts
    only for a key the formula manages (an operator's own key waits for the next explicit
    apply: "restart pending") and never creates a missing cinder.conf. Nothing does, unless
    pillar cinder_ha:cinder_conf:create is true (a brand-new install).
    cinder_ha.clean leaves cinder.conf in place (cinder needs it without the cluster too). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
{#- (an invalid pillar renders the validation state alone, with every problem listed) #}
{%- set primitive_id = cinder_ha.cluster.primitive_id %}
{%- set correction = salt["pillar.get"]("cinder_ha_run:reason") == "drift" %}
{%- set api_pid_file = cinder_ha.agent.pid or cinder_ha.pid_dir ~ "/" ~ primitive_id ~ ".pid" %}

{#- A straight switch between cloned and balanced goes through active_passive (the CIB says
    which mode runs now): checked before cinder.conf (where cinder-api listens) or the CIB
    changes. #}
{{ tplroot }}-config-mode-switch-supported:
  cinder_ha.mode_switch_supported:
    - name: {{ cinder_ha.cluster.mode | json }}
    - require:
      - sls: {{ tplroot }}.validate
    - require_in:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed
{%- if cinder_ha.volume %}

{#- The pillar's backends checked in cinder's own Python before anything is written: drivers
    import, active_active only with SUPPORTS_ACTIVE_ACTIVE drivers, a cluster name that is no
    host, a lock manager that answers. #}
{{ tplroot }}-config-volume-backends-usable:
  cinder_volume.backends_usable:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - binary: {{ cinder_ha.service_binaries["cinder-volume"] | json }}
    - require:
      - sls: {{ tplroot }}.validate
    - require_in:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed

{#- Where each backend's rows and volumes are filed (its backend_host, its cluster, the old HA
    guide's shared [DEFAULT] host): recorded before a write that changes it, moved once
    cinder-volume runs in the new placement (cluster.sls: after the cluster objects). #}
{{ tplroot }}-config-placement-recorded:
  cinder_volume.placement_recorded:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - require:
      - sls: {{ tplroot }}.validate
    - require_in:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed
{%- endif %}

{{ tplroot }}-config-cinder-conf-managed:
  cinder_conf.managed:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - binary: {{ (cinder_ha.agent.binary or cinder_ha.cinder_api_binary) | json }}
    - create: {{ (cinder_ha.cinder_conf.create and not correction) | json }}
    - pid_file: {{ api_pid_file | json }}
    - require:
      - sls: {{ tplroot }}.validate

{{ tplroot }}-config-cinder-api-restarted-through-cluster:
  cinder_ha.restarted_through_cluster:
    - name: {{ primitive_id | json }}
    - config: {{ (cinder_ha.agent.config or cinder_ha.cinder_conf.path) | json }}
    - pid_file: {{ api_pid_file | json }}
    - correction: {{ correction | json }}
    - reads_backends: false
{%- if cinder_ha.cluster.mode == "balanced" %}
    {#- another instance serving (through HAProxy) before this one restarts #}
    - peers: {{ salt["cinder_ha.peer_health_urls"]() | json }}
    - vip_id: {{ cinder_ha.cluster.vip_id | json }}
    - haproxy_id: {{ cinder_ha.haproxy_id | json }}
{%- endif %}
{%- if not formula.role.is_controller %}
    {#- the controller may be switching cluster:mode in this same apply: restart in the new shape #}
    - cloned: {{ (cinder_ha.cluster.mode in ("cloned", "balanced")) | json }}
{%-   if cinder_ha.cluster.mode != "balanced" %}
    {#- a switch away from balanced: cinder-api binds the VIP once HAProxy is gone #}
    - after_absent: {{ ["cl_" ~ cinder_ha.haproxy_id] | json }}
{%-   endif %}
{%- endif %}
    - require:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed
{#- cinder-scheduler and cinder-volume, as cinder-api: restarted through the cluster where they
    run, only when what they would read differs from what they started with. #}
{%- for service in [cinder_ha.scheduler, cinder_ha.volume] if service %}
{%-   set is_volume = service.primitive_id == (cinder_ha.volume or {}).get("primitive_id") %}

{{ tplroot }}-config-{{ service.primitive_id }}-restarted-through-cluster:
  cinder_ha.restarted_through_cluster:
    - name: {{ service.primitive_id | json }}
    - config: {{ (cinder_ha.agent.config or cinder_ha.cinder_conf.path) | json }}
    - pid_file: {{ (cinder_ha.pid_dir ~ "/" ~ service.primitive_id ~ ".pid") | json }}
    - correction: {{ correction | json }}
    - reads_backends: {{ is_volume | json }}
{%-   if is_volume and not formula.role.is_controller %}
    {#- the controller may be switching volume:mode in this same apply: restart in the new shape #}
    - cloned: {{ (service.mode == "active_active") | json }}
{%-   endif %}
    - require:
      - cinder_conf: {{ tplroot }}-config-cinder-conf-managed
{%- endfor %}
{%- endif %}
