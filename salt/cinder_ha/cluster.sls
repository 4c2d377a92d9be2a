{#- Guide step 2: the primitive p_cinder-api (ocf:openstack:cinder-api) and the VIP
    p_ip_cinder-api, kept together (colocation + order), committed as ONE CIB transaction.
    Only the controller writes the CIB; with secret_mode lrm every node gets the secret
    file, since any node may run the resource. #}
{%- from "cinder_ha/map.jinja" import cinder_ha, is_controller with context %}
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
{%- set vip_params = {"ip": vip.address, "cidr_netmask": vip.netmask | string} %}
{%- if vip.nic %}{% do vip_params.update({"nic": vip.nic}) %}{% endif %}
include:
  - cinder_ha.validate
  - cinder_ha.agent
  - cinder_ha.alerts

{%- if secret_params and agent.secret_mode == "lrm" %}

cinder_ha agent secrets on this node:
  crm.secrets_present:
    - name: {{ cluster.primitive_id | json }}
    - secrets: {{ {"os_password": {"pillar": "cinder_ha:agent:os_password"}} | json }}
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
    - require:
      - cinder_ha: cinder_ha pillar is valid
      - file: cinder_ha ocf agent installed
      - file: cinder_ha_alert_agent
{%-   if secret_params and agent.secret_mode == "lrm" %}
      - crm: cinder_ha agent secrets on this node
{%-   endif %}
{%- endif %}
