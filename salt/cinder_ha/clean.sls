{#- salt '*' state.apply cinder_ha.clean
    Removes what `state.apply cinder_ha` built, one clean SLS per component (clean/):
      catalog   the Block Storage services and endpoints in Keystone, in the pillar's region,
                ONLY with pillar cinder_ha:clean:catalog: true (controller only)
      cluster   the cluster objects (VIP, cinder-api primitive, colocation, order, lrm secret
                rules, alert) in ONE CIB transaction (controller only), then on every node the
                lrm secret files, the node's secrets digest attribute and the VIP on its
                loopback (cluster:mode cloned)
      watch     the cinder_ha_watch engine's minion config (restart the minion to stop it)
      alerts    the Pacemaker alert agent and its spool directory
      agent     the ocf:openstack:cinder-api resource agent
    cinder.conf stays in place: cinder reads it with or without the cluster, and the guide's
    values it replaced are not restored. The pillar is validated first: on bad input nothing
    changes. test=True lists everything a real run removes; a second run changes nothing. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check = formula.check %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.clean.catalog
  - {{ tplroot }}.clean.cluster
  - {{ tplroot }}.clean.watch
  - {{ tplroot }}.clean.alerts
  - {{ tplroot }}.clean.agent
{%- endif %}
