{#- Guide step 2: the primitive p_cinder-api (ocf:openstack:cinder-api) and the VIP
    p_ip_cinder-api, kept together (colocation + order), committed as ONE CIB transaction.
    Only the controller writes the CIB; with secret_mode lrm every node gets the secret
    file, since any node may run the resource, and publishes the digest of its secrets as a
    node attribute: location rules keep cinder-api off (and unprobed on) every node without
    the current secret, and the VIP with it (a missing secret file is a hard "Unable to load
    CIB secrets" error that bans the resource from the node until a cleanup). #}
{%- from "cinder_ha/map.jinja" import check, cinder_ha, role, is_controller with context %}
{%- if not check.valid %}
{#- nothing but the validation state, which lists every problem #}
include:
  - cinder_ha.validate
{%- else %}
{%- set agent = cinder_ha.agent %}
{%- set cluster = cinder_ha.cluster %}
{%- set vip = cinder_ha.vip %}
{%- set agent_param_names = ["binary", "config", "user", "pid", "url", "keystone_get_token_url",
                             "os_username", "os_password", "os_tenant_name", "os_auth_url",
                             "os_project_name", "os_user_domain_name", "os_project_domain_name",
                             "additional_parameters"] %}
{%- set params = {"binary": cinder_ha.cinder_api_binary, "user": cinder_ha.cinder_user} %}
{%- for name in agent_param_names if agent.get(name) is not none %}
{%-   do params.update({name: agent[name] | string}) %}
{%- endfor %}
{%- set secret_params = ["os_password"] if params.get("os_password") else [] %}
{#- The password is named by its pillar key and read inside the crm module: it never enters
    the rendered SLS (Salt caches that on the minion) nor a state argument. #}
{%- if secret_params %}{% do params.update({"os_password": {"pillar": "cinder_ha:agent:os_password"}}) %}{% endif %}
{%- set lrm_secrets = secret_params and agent.secret_mode == "lrm" %}
{%- set secret_rule_ids = ["l_" ~ cluster.primitive_id ~ "_secrets", "l_" ~ cluster.vip_id ~ "_secrets"] %}
{%- set vip_params = {"ip": vip.address, "cidr_netmask": vip.netmask | string} %}
{%- if vip.nic %}{% do vip_params.update({"nic": vip.nic}) %}{% endif %}
include:
  - cinder_ha.validate
  - cinder_ha.agent
  - cinder_ha.alerts

{%- if not role.cluster_running %}

{#- The agent and cinder.conf still apply on this node (their own SLS); the cluster part
    cannot, and says so instead of passing silently. #}
cinder_ha cluster not running on this node:
  test.fail_without_changes:
    - comment: {{ ("Cluster not running on this node: the secrets and cluster objects were not applied ("
                   ~ role.reason ~ "). The agent and cinder.conf were.") | json }}
    - require:
      - cinder_ha: cinder_ha pillar is valid
{%- else %}

{%- if not is_controller %}

cinder_ha cluster objects are the controller's:
{%-   if role.dc or cinder_ha.controller %}
  test.succeed_without_changes:
    - comment: {{ ("Not the controller (" ~ role.reason ~ "): the cluster objects and the catalog are "
                   "applied by that node; this node applies its own parts only.") | json }}
{%-   else %}
  test.fail_without_changes:
    - comment: {{ ("No controller in this run: " ~ role.reason) | json }}
{%-   endif %}
{%- endif %}

{%- if lrm_secrets %}

{#- The controller's own digest attribute is set by crm.configured, in the same CIB
    transaction as the rules: published here first, it would make this node ineligible
    (and stop cinder-api here) until the rules caught up, on every password change. #}
cinder_ha agent secrets on this node:
  crm.secrets_present:
    - name: {{ cluster.primitive_id | json }}
    - secrets: {{ {"os_password": {"pillar": "cinder_ha:agent:os_password"}} | json }}
    - publish: {{ (not is_controller) | json }}
    - require:
      - cinder_ha: cinder_ha pillar is valid
{%- endif %}

{%- if is_controller %}

cinder_ha cluster resources:
  crm.configured:
    - objects:
      - primitive: {{ cluster.vip_id | json }}
        agent: ocf:heartbeat:IPaddr2
        params: {{ vip_params | json }}
        ops:
          monitor: {interval: {{ cinder_ha.vip_monitor_interval }}, timeout: {{ cinder_ha.vip_monitor_timeout }}}
      - primitive: {{ cluster.primitive_id | json }}
        agent: ocf:openstack:cinder-api
        params: {{ params | json }}
        secret_params: {{ secret_params | json }}
        secret_mode: {{ agent.secret_mode }}
        ops:
          monitor: {interval: {{ agent.monitor_interval }}, timeout: {{ agent.monitor_timeout }}}
          start: {timeout: {{ agent.start_timeout }}}
          stop: {timeout: {{ agent.stop_timeout }}}
{%-   if cluster.stickiness is not none %}
        meta: {resource-stickiness: {{ cluster.stickiness | string | json }}}
{%-   endif %}
      - colocation: {{ ("c_" ~ cluster.primitive_id ~ "_with_ip") | json }}
        score: INFINITY
        resources: [{{ cluster.primitive_id | json }}, {{ cluster.vip_id | json }}]
      - order: {{ ("o_ip_before_" ~ cluster.primitive_id) | json }}
        kind: Mandatory
        first: {{ cluster.vip_id | json }}
        then: {{ cluster.primitive_id | json }}
      {#- start/stop/failure of the two resources -> spool -> cinder_ha_watch engine -> reactor #}
      - alert: cinder_ha_salt
        path: /usr/share/pacemaker/alerts/cinder_ha_alert
        select: [resources]
        attributes:
          cinder_ha_resources: {{ (cluster.primitive_id ~ " " ~ cluster.vip_id) | json }}
        recipient: /var/lib/cinder-ha/alerts
{%-   if lrm_secrets %}
      {#- Nodes whose cinder_ha_secrets_<primitive> attribute is missing or stale: -INFINITY, and
          resource-discovery=never so they are not even probed (Pacemaker 2.1 applies a rule's
          discovery mode to the nodes the rule matches; a score alone still probes). The VIP
          gets the same ban, probes allowed (IPaddr2 needs no secret): otherwise, when no node
          is eligible, Pacemaker rolls the colocation back and starts the VIP alone. #}
      - location: {{ secret_rule_ids[0] | json }}
        resource: {{ cluster.primitive_id | json }}
        secrets_of: {{ cluster.primitive_id | json }}
        resource_discovery: never
      - location: {{ secret_rule_ids[1] | json }}
        resource: {{ cluster.vip_id | json }}
        secrets_of: {{ cluster.primitive_id | json }}
{%-   endif %}
    - require:
      - cinder_ha: cinder_ha pillar is valid
      - file: cinder_ha ocf agent installed
      - file: cinder_ha_alert_agent
{%-   if lrm_secrets %}
      - crm: cinder_ha agent secrets on this node
{%-   else %}

{#- No lrm secret (plain mode, or no password): rules from an earlier lrm setup would keep
    the resources off every node once the password changes. #}
cinder_ha secrets rules absent:
  crm.absent:
    - ids: {{ secret_rule_ids | json }}
    - require:
      - crm: cinder_ha cluster resources
{%-   endif %}
{%- endif %}
{%- endif %}
{%- endif %}
