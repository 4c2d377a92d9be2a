{#- Guide step 2: the primitive p_cinder-api (ocf:openstack:cinder-api) and the VIP
    p_ip_cinder-api, kept together (colocation + order), committed as ONE CIB transaction.
    The object list is built by cinder_ha.cluster_objects (cinder_ha_lib.formula, unit-tested;
    secrets named by pillar key, never by value). Only the controller writes the CIB; with
    secret_mode lrm every node gets the secret file, since any node may run the resource, and
    publishes the digest of its secrets as a node attribute: location rules keep cinder-api off
    (and unprobed on) every node without an accepted secret, and the VIP with it (a missing
    secret file is a hard "Unable to load CIB secrets" error that bans the resource from the
    node until a cleanup). A password rotation bans no node, whichever minion runs first (README
    "lrm secrets"). Removed by cinder_ha.clean. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha, role, is_controller = formula.check, formula.cinder_ha, formula.role, formula.role.is_controller %}
{%- if not check.valid %}
{#- nothing but the validation state, which lists every problem #}
include:
  - {{ tplroot }}.validate
{%- else %}
{%- set cluster = cinder_ha.cluster %}
{%- set objects = salt["cinder_ha.cluster_objects"](cinder_ha) %}
{#- the primitive's lrm secrets, each named by its pillar key (crm_secrets.present reads it) #}
{%- set secrets = {} %}
{%- for obj in objects if obj.get("primitive") == cluster.primitive_id %}
{%-   for name in obj.secret_params %}{% do secrets.update({name: obj.params[name]}) %}{% endfor %}
{%- endfor %}
{%- set lrm_secrets = secrets and cinder_ha.agent.secret_mode == "lrm" %}
include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.agent
  - {{ tplroot }}.alerts
  {#- its cinder-api restart comes after the controller's CIB change (cluster-objects-configured) #}
  - {{ tplroot }}.config
{%- if cluster.mode == "balanced" %}

{#- cluster:mode balanced: the HAProxy config, the same on every controller, checked by HAProxy
    (haproxy -c) before it is written, and reloaded (master-worker: no connection refused) where
    HAProxy runs; elsewhere the cluster starts it from this file. Written whether the cluster
    runs here or not, as cinder.conf is. #}
{{ tplroot }}-cluster-haproxy-config-managed:
  cinder_haproxy.config_managed:
    - name: {{ cinder_ha.haproxy_config | json }}
    - text: {{ salt["cinder_ha.haproxy_config"](cinder_ha) | json }}
    - pid_file: {{ cinder_ha.haproxy_params.pid | json }}
    - agent: {{ (cinder_ha.agent_dir ~ "/haproxy") | json }}
    - params: {{ cinder_ha.haproxy_params | json }}
    - instance: {{ cinder_ha.haproxy_id | json }}
    - binary: {{ cinder_ha.haproxy_binary | json }}
    - require:
      - sls: {{ tplroot }}.validate
      - sls: {{ tplroot }}.agent
      - cinder_ha: {{ tplroot }}-config-mode-switch-supported
{%- endif %}

{%- if not role.cluster_running %}

{#- The agent and cinder.conf still apply on this node (their own SLS); the cluster part
    cannot, and says so instead of passing silently. #}
{{ tplroot }}-cluster-not-running:
  test.fail_without_changes:
    - comment: {{ ("Cluster not running on this node: the secrets and cluster objects were not applied ("
                   ~ role.reason ~ "). The agent and cinder.conf were.") | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%- else %}

{%- if not is_controller %}

{{ tplroot }}-cluster-objects-are-the-controllers:
{%-   if role.dc or cinder_ha.controller %}
  test.succeed_without_changes:
    - comment: {{ ("Not the controller (" ~ role.reason ~ "): the cluster objects and the catalog are "
                   "applied by that node; this node applies its own parts only.") | json }}
{%-   else %}
  test.fail_without_changes:
    - comment: {{ ("No controller in this run: " ~ role.reason) | json }}
{%-   endif %}
{%- endif %}

{#- (a VIP on the loopback already, as in the one-machine sandbox, is left to IPaddr2) #}
{%- if cinder_ha.vip_is_loopback %}
{%- elif cluster.mode == "balanced" %}

{#- cluster:mode balanced: cinder-api listens on the node's own address and HAProxy on the VIP
    (bound transparent, wherever the VIP is): a VIP left on the loopback by cloned mode goes once
    this node's cinder-api runs on its new address (the restart check of config.sls passed). #}
{{ tplroot }}-cluster-vip-not-on-loopback:
  cinder_ha.loopback_vip:
    - name: {{ cinder_ha.vip.address | json }}
    - present: false
    - require:
      - cinder_ha: {{ tplroot }}-config-cinder-api-restarted-through-cluster
{%- elif cluster.mode == "cloned" %}

{#- cluster:mode cloned: every node keeps the VIP on its loopback, never announced in ARP
    (arp_ignore=1, arp_announce=2: runtime values; after a reboot the node's clone instance
    sets them and the address again at start), the LVS-DR real-server setup. Only the IPaddr2
    holder answers ARP for it; a node the VIP just left still answers what reaches it until
    clients have the new holder's gratuitous ARP, so a move loses no request. #}
{{ tplroot }}-cluster-vip-on-loopback:
  cinder_ha.loopback_vip:
    - name: {{ cinder_ha.vip.address | json }}
    - present: true
    - require:
      - sls: {{ tplroot }}.validate
{%- else %}

{#- active_passive: no VIP on the loopback (a node without the VIP would otherwise answer its own
    requests to it). After a switch back from cloned mode it goes once the clone is gone from the
    CIB (the controller removes it in this run: up to 60 s), so that no instance still running
    loses the address it listens on. #}
{{ tplroot }}-cluster-vip-not-on-loopback:
  cinder_ha.loopback_vip:
    - name: {{ cinder_ha.vip.address | json }}
    - present: false
    - clone_id: {{ cinder_ha.clone_id | json }}
    - primitive_id: {{ cluster.primitive_id | json }}
    - vip_id: {{ cluster.vip_id | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   if is_controller %}
      - crm: {{ tplroot }}-cluster-objects-configured
{%-   endif %}
{%- endif %}

{%- if cluster.mode == "balanced" %}

{#- This node's HAProxy failures that this run made moot (no config file yet, or the old mode's
    cinder-api still on the VIP's port here when the controller added the clone): forgotten, so
    the cluster starts it again at once instead of after failure-timeout. #}
{{ tplroot }}-cluster-haproxy-failures-cleared:
  crm.failures_cleared:
    - name: {{ cinder_ha.haproxy_id | json }}
    - require:
      - cinder_haproxy: {{ tplroot }}-cluster-haproxy-config-managed
      - cinder_ha: {{ tplroot }}-config-cinder-api-restarted-through-cluster
{%-   if is_controller %}
      - crm: {{ tplroot }}-cluster-objects-configured
{%-   endif %}
{%- endif %}

{%- if lrm_secrets %}

{#- Another node publishes its digest together with the rules, which keep accepting it
    (crm.publish_secrets_digest); the controller's own digest attribute is set by
    crm.configured, in the same CIB transaction as the rules it writes. #}
{{ tplroot }}-cluster-secrets-present:
  crm_secrets.present:
    - name: {{ cluster.primitive_id | json }}
    - secrets: {{ secrets | json }}
    - secrets_dir: {{ cinder_ha.secrets_dir | json }}
    - publish: {{ (not is_controller) | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}

{%- if is_controller %}

{{ tplroot }}-cluster-objects-configured:
  crm.configured:
    - objects: {{ objects | json }}
    - secrets_dir: {{ cinder_ha.secrets_dir | json }}
    - require:
      - sls: {{ tplroot }}.validate
      - sls: {{ tplroot }}.agent
      - sls: {{ tplroot }}.alerts
      - cinder_ha: {{ tplroot }}-config-mode-switch-supported
{%-   if cinder_ha.volume %}
      {#- backends cinder's Python refuses change nothing, in the CIB either #}
      - cinder_volume: {{ tplroot }}-config-volume-backends-usable
{%-   endif %}
{%-   if cluster.mode == "balanced" %}
      - cinder_haproxy: {{ tplroot }}-cluster-haproxy-config-managed
{%-   endif %}
{%-   if lrm_secrets %}
      - crm_secrets: {{ tplroot }}-cluster-secrets-present
{%-   endif %}
    {#- cinder-api restarts once the CIB has this apply's mode, not before in the old one: a switch
        to or from balanced changes where it listens (to balanced: one instance at a time, the
        others serving through HAProxy, instead of the old mode's primitive down meanwhile; from
        balanced: cinder-api back on the VIP once HAProxy no longer holds it). #}
    - require_in:
      - cinder_ha: {{ tplroot }}-config-cinder-api-restarted-through-cluster
{%-   if not lrm_secrets %}

{#- No lrm secret (plain mode, or no password): rules from an earlier lrm setup would keep
    the resources off every node once the password changes. #}
{{ tplroot }}-cluster-secret-rules-absent:
  crm.absent:
    - ids: {{ salt["cinder_ha.cluster_object_ids"](cinder_ha, secret_rules=True) | json }}
    - require:
      - crm: {{ tplroot }}-cluster-objects-configured
{%-   endif %}

{#- What only another cluster:mode made and this mode's objects do not replace: the cloned
    mode's VIP constraints (balanced keeps the cinder-api clone), balanced mode's HAProxy clone
    and its constraints. After the new mode's objects are in (the VIP is never without a
    constraint that places it), the constraints first: HAProxy's would keep the VIP (and
    cinder-api after it) with HAProxy while HAProxy stops. Then HAProxy, stopped, removed,
    before cinder-api binds the VIP again. #}
{%- set other_constraints, other_resources = cinder_ha.other_mode_ids %}
{{ tplroot }}-cluster-other-mode-constraints-absent:
  crm.absent:
    - ids: {{ other_constraints | json }}
    - require:
      - crm: {{ tplroot }}-cluster-objects-configured

{{ tplroot }}-cluster-other-mode-objects-absent:
  crm.purged:
    - ids: {{ other_resources | json }}
    - require:
      - crm: {{ tplroot }}-cluster-other-mode-constraints-absent
    - require_in:
      - cinder_ha: {{ tplroot }}-config-cinder-api-restarted-through-cluster
{%- endif %}
{%- if cinder_ha.volume %}

{#- After a placement change (volume:mode switch, new backend_host or cluster, the old shared
    host): the old placement's volumes and rows move once cinder-volume runs in the new one.
    Every node runs it after its own restart: a node still on its old cinder.conf recreates
    the old row until then. #}
{{ tplroot }}-cluster-volume-placement-moved:
  cinder_volume.placement_moved:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - binary: {{ cinder_ha.service_binaries["cinder-volume"] | json }}
    - require:
      - cinder_ha: {{ tplroot }}-config-{{ cinder_ha.volume.primitive_id }}-restarted-through-cluster
{%-   if is_controller %}
      - crm: {{ tplroot }}-cluster-objects-configured
{%-   endif %}
{%- endif %}
{%- endif %}
{%- endif %}
