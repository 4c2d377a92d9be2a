{#- The Block Storage services and endpoints of cinder_ha.catalog, in the pillar's region,
    only with pillar cinder_ha:clean:catalog: true, and only on the controller. A service that
    still has endpoints in another region is kept (only its endpoints here go). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha, is_controller = formula.check, formula.cinder_ha, formula.role.is_controller %}
include:
  - {{ tplroot }}.validate
{%- if check.valid and is_controller %}
{%-   if cinder_ha.clean.catalog %}

{{ tplroot }}-clean-catalog-absent:
  cinder_keystone.catalog_absent:
    - name: {{ cinder_ha.endpoints.service_types[0] | json }}
    - services: {{ cinder_ha.catalog_services | json }}
    - region: {{ cinder_ha.keystone.region | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   else %}

{{ tplroot }}-clean-catalog-kept:
  test.succeed_without_changes:
    - comment: {{ ("The Block Storage catalog entries in " ~ cinder_ha.keystone.region ~ " are kept (set pillar "
                   "cinder_ha:clean:catalog: true to remove them).") | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   endif %}
{%- endif %}
