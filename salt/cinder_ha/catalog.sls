{#- Guide step 4: the Block Storage service and its endpoints in Keystone v3, public URL on
    the public VIP, internal and admin URLs on the internal VIP, keyed on (service type,
    interface, region). Then the catalog URL is probed: a client that knows only Keystone
    must reach the real cinder-api, and (with a volume service) cinder's services table must
    show the scheduler and cinder-volume up. Only the controller changes the catalog.
    cinder_ha.clean removes these only with pillar cinder_ha:clean:catalog: true. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha, is_controller = formula.check, formula.cinder_ha, formula.role.is_controller %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.cluster
{%- set endpoints = cinder_ha.endpoints %}
{%- set region = cinder_ha.keystone.region %}
{%- if is_controller %}
{#-   The reads of the states below start now, while the rest renders and applies
      (cinder_keystone.prefetch; init.sls started them already in a run of the whole formula). #}
{%-   if "cinder_keystone.prefetch" in salt %}
{%-     do salt["cinder_keystone.prefetch"](cinder_ha.catalog_services, region) %}
{%-   endif %}
{%-   for service_type in endpoints.service_types %}
{%-     set service_name = cinder_ha.catalog_services[service_type] %}

{{ tplroot }}-catalog-{{ service_type }}-service-present:
  cinder_keystone.service_present:
    - name: {{ service_name | json }}
    - service_type: {{ service_type | json }}
    - description: {{ endpoints.description | json }}
    - require:
      - sls: {{ tplroot }}.validate

{{ tplroot }}-catalog-{{ service_type }}-endpoints-present:
  cinder_keystone.endpoints_present:
    - name: {{ service_type | json }}
    - urls: {{ cinder_ha.endpoint_urls | json }}
    - region: {{ region | json }}
    - service_name: {{ service_name | json }}
    - require:
      - cinder_keystone: {{ tplroot }}-catalog-{{ service_type }}-service-present
{%-   endfor %}
{%-   if endpoints.retire_legacy %}

{#- only once EVERY type's current endpoints are in place: a failed volumev3 state must not
    leave the region with its /v2 endpoints deleted and no /v3 one #}
{{ tplroot }}-catalog-legacy-absent:
  cinder_keystone.legacy_absent:
    - name: block-storage
    - region: {{ region | json }}
    - require:
{%-     for service_type in endpoints.service_types %}
      - cinder_keystone: {{ tplroot }}-catalog-{{ service_type }}-endpoints-present
{%-     endfor %}
{%-   endif %}

{{ tplroot }}-catalog-api-answers:
  cinder_ha.api_answers:
    - name: {{ endpoints.service_types[0] | json }}
    - region: {{ region | json }}
    - timeout: {{ cinder_ha.settle_timeout }}
    - require:
      - cinder_keystone: {{ tplroot }}-catalog-{{ endpoints.service_types[0] }}-endpoints-present
      - sls: {{ tplroot }}.cluster
{%-   if cinder_ha.volume %}

{#- The cluster starts the scheduler and cinder-volume before their first heartbeat: the run
    ends only once cinder's services table shows them up, so that a create right after the
    apply finds a backend instead of ending in error (no valid backend). #}
{{ tplroot }}-catalog-volume-services-up:
  cinder_volume.services_up:
    - name: {{ cinder_ha.cinder_conf.path | json }}
    - timeout: {{ cinder_ha.settle_timeout }}
    - require:
      - sls: {{ tplroot }}.cluster
{%-   endif %}
{%- endif %}
{%- endif %}
