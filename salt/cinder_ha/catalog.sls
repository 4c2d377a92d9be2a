{#- Guide step 4: the Block Storage service and its endpoints in Keystone v3, public URL on
    the public VIP, internal and admin URLs on the internal VIP, keyed on (service type,
    interface, region). Then the catalog URL is probed: a client that knows only Keystone
    must reach the real cinder-api. Only the controller changes the catalog. #}
{%- from "cinder_ha/map.jinja" import check, cinder_ha, is_controller with context %}
include:
  - cinder_ha.validate
{%- if check.valid %}
  - cinder_ha.cluster
{%- set endpoints = cinder_ha.endpoints %}
{%- set region = cinder_ha.keystone.region %}
{%- if is_controller %}
{%-   for service_type in endpoints.service_types %}
{%-     set service_name = endpoints.service_name if service_type == "block-storage" else endpoints.service_name ~ "v3" %}

{{ service_type }} service:
  cinder_keystone.service_present:
    - name: {{ service_name | json }}
    - service_type: {{ service_type | json }}
    - description: {{ endpoints.description | json }}
    - require:
      - cinder_ha: cinder_ha pillar is valid

{{ service_type }} endpoints:
  cinder_keystone.endpoints_present:
    - name: {{ service_type | json }}
    - urls: {{ cinder_ha.endpoint_urls | json }}
    - region: {{ region | json }}
    - service_name: {{ service_name | json }}
    - require:
      - cinder_keystone: {{ service_type }} service
{%-   endfor %}
{%-   if endpoints.retire_legacy %}

legacy block storage entries retired:
  cinder_keystone.legacy_absent:
    - name: block-storage
    - region: {{ region | json }}
    - require:
      - cinder_keystone: {{ endpoints.service_types[0] }} endpoints
{%-   endif %}

block storage API answers through the catalog:
  cinder_ha.api_answers:
    - name: {{ endpoints.service_types[0] | json }}
    - region: {{ region | json }}
    - timeout: {{ cinder_ha.settle_timeout }}
    - require:
      - cinder_keystone: {{ endpoints.service_types[0] }} endpoints
      - crm: cinder_ha cluster resources
{%- endif %}
{%- endif %}
