{#- The master's reactor maps every cinder_ha/* tag to this file (see README, "Reactor").

    Event data are data, never commands: the only targets are the minion named by the
    event's id (set by the master from the authenticated connection), as a one-element
    list (tgt_type list; a string with commas would name several minions), and nothing
    from the event reaches a command line.

    cinder_ha/conf/changed      (cinder_ha_watch engine) re-apply cinder_ha.config on that
                                minion, queued behind a running state (never dropped)
    cinder_ha/cluster/resource  (alert agent via the engine) cinder_ha_events.handle_move
                                on that minion: record the move, re-check after a start
    cinder_ha/reconfigure       (operator) one orchestration of cinder_ha.orch.reconfigure

    Master options (optional):
      cinder_ha_reactor:
        conf_names: [cinder.conf]      # file names a conf/changed event may name
        conf_sls: cinder_ha.config     # what a conf/changed event re-applies
-#}
{%- set settings = opts.get('cinder_ha_reactor') or {} %}
{%- set conf_names = settings.get('conf_names') or ['cinder.conf'] %}
{%- set conf_sls = settings.get('conf_sls') or 'cinder_ha.config' %}
{%- set minion = data.get('id') if data.get('id') is string else '' %}
{%- set payload = data.get('data') if data.get('data') is mapping else {} %}
{%- set id_ok = minion and (minion | regex_match('^([A-Za-z0-9_.@-]{1,253})$')) %}

{%- if tag == 'cinder_ha/conf/changed' and id_ok %}
{%-   set path = payload.get('path') if payload.get('path') is string else '' %}
{%-   set parts = path.split('/') %}
{%-   if path.startswith('/') and '..' not in parts and '' not in parts[1:] and parts[-1] in conf_names %}
cinder_ha_conf_changed:
  local.state.apply:
    - tgt: {{ [minion] | json }}
    - tgt_type: list
    - args:
      - mods: {{ conf_sls | json }}
      - queue: True
{%-   endif %}

{%- elif tag == 'cinder_ha/cluster/resource' and id_ok %}
{%-   set keys = ['kind', 'rsc', 'task', 'rc', 'target_rc', 'status', 'desc', 'node', 'timestamp', 'interval'] %}
{%-   set event = {} %}
{%-   for key in keys if payload.get(key) is not none %}
{%-     do event.update({key: (payload[key] | string)[:256]}) %}
{%-   endfor %}
cinder_ha_cluster_resource:
  local.cinder_ha_events.handle_move:
    - tgt: {{ [minion] | json }}
    - tgt_type: list
    - args:
      - event: {{ event | json }}

{%- elif tag == 'cinder_ha/reconfigure' %}
cinder_ha_reconfigure:
  runner.state.orchestrate:
    - args:
      - mods: cinder_ha.orch.reconfigure
{%- endif %}
