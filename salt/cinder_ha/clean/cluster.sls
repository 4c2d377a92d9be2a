{#- The cluster objects of cinder_ha.cluster (cinder_ha.cluster_object_ids: lrm secret rules,
    colocation, order, cinder-api primitive, VIP, alert) removed in ONE CIB transaction by the
    controller, once the cluster has stopped the resources (target-role: stopped with their
    parameters, not as orphans). Then, on every node,
    the lrm secret files and the node's secrets digest attribute: only once the primitive is
    gone from the CIB and stopped here (its stop still reads them), waited for up to
    settle_timeout, and the VIP on the node's loopback (cluster:mode cloned). Like
    cinder_ha.cluster, a node where Pacemaker is not running fails visibly and keeps its files. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha, role, is_controller = formula.check, formula.cinder_ha, formula.role, formula.role.is_controller %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.clean.catalog
{%- if not role.cluster_running %}

{{ tplroot }}-clean-cluster-not-running:
  test.fail_without_changes:
    - comment: {{ ("Cluster not running on this node: the cluster objects and secrets were not removed ("
                   ~ role.reason ~ "); the files they need stay too.") | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%- else %}
{%-   if is_controller %}

{{ tplroot }}-clean-cluster-objects-absent:
  crm.purged:
    - ids: {{ salt["cinder_ha.cluster_object_ids"](cinder_ha) | json }}
    - timeout: {{ (cinder_ha.settle_timeout | string ~ "s") | json }}
    - require:
      - sls: {{ tplroot }}.validate
      - sls: {{ tplroot }}.clean.catalog
{%-   endif %}

{{ tplroot }}-clean-cluster-secrets-absent:
  crm_secrets.absent:
    - name: {{ cinder_ha.cluster.primitive_id | json }}
    - secrets_dir: {{ cinder_ha.secrets_dir | json }}
    - timeout: {{ cinder_ha.settle_timeout }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   if is_controller %}
      - crm: {{ tplroot }}-clean-cluster-objects-absent
{%-   endif %}
{%-   if not cinder_ha.vip_is_loopback %}

{#- cluster:mode cloned put the VIP on every node's loopback (cluster.sls): it goes once the
    cluster has stopped this node's instance (the controller's purge above, up to 60 s), as on
    a switch back to active_passive; a no-op on a node without it. The ARP sysctls it set stay:
    host settings, which the host's own sysctl configuration owns. #}
{{ tplroot }}-clean-cluster-vip-not-on-loopback:
  cinder_ha.loopback_vip:
    - name: {{ cinder_ha.vip.address | json }}
    - present: false
    - clone_id: {{ cinder_ha.clone_id | json }}
    - primitive_id: {{ cinder_ha.cluster.primitive_id | json }}
    - vip_id: {{ cinder_ha.cluster.vip_id | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%-     if is_controller %}
      - crm: {{ tplroot }}-clean-cluster-objects-absent
{%-     endif %}
{%-   endif %}
{%- endif %}
{%- endif %}
