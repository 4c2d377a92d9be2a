{#- Full reconfiguration after a pillar change: cinder_ha applied to the controllers once.

    An operator command on the master, never an event: any minion can put any tag and id
    on the bus (see README, "Reactor trust model"), so the reactor ignores (and logs) the
    tag cinder_ha/reconfigure.
        salt-run state.orchestrate cinder_ha.orch.reconfigure

    The controllers are the minions with a cinder_ha pillar; the master option (or
    orchestration pillar) cinder_ha_orch_tgt overrides that compound target. One node at
    a time (batch 1): the cluster sees one committer at once. state.apply renders fresh
    pillar itself; a controller newly added to the pillar is matched by I@ once the master's
    pillar cache knows it (salt '*' saltutil.refresh_pillar).
-#}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set tgt = pillar.get(tplroot ~ '_orch_tgt') or opts.get(tplroot ~ '_orch_tgt') or 'I@' ~ tplroot ~ ':vip:address' %}
{{ tplroot }}-orch-reconfigure-applied:
  salt.state:
    - tgt: {{ tgt | json }}
    - tgt_type: compound
    - sls: {{ tplroot }}
    - queue: True
    - batch: 1
