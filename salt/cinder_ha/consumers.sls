{#- Guide section 3: "your OpenStack services point their Block Storage API configuration to
    the highly available virtual IP". Applied on request to the minions that consume Block
    Storage (nova's compute and controller nodes, glance with the cinder store), not part of
    init.sls:  salt -C 'G@roles:nova-compute or G@roles:glance' state.apply cinder_ha.consumers
    Each file of pillar cinder_ha:consumers:files: an endpoint template that names anything but
    a VIP removed (the catalog then leads to the VIP), catalog_info, the region and, for an https
    endpoint, the CA set; written as cinder.conf is (comments and unrelated keys kept, atomic);
    then the endpoint resolved as the consumer will (keystoneauth), which must be on a VIP. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha = formula.check, formula.cinder_ha %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
{%-   for consumer in cinder_ha.consumers.files %}

{{ tplroot }}-consumers-{{ consumer.id }}-pointed-at-vip:
  cinder_consumers.pointed_at_vip:
    - name: {{ consumer.path | json }}
    - kind: {{ consumer.kind | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%-   else %}

{{ tplroot }}-consumers-none-configured:
  test.configurable_test_state:
    - changes: false
    - result: true
    - comment: pillar cinder_ha:consumers:files names no consumer file on this minion; nothing to point at the VIP
    - require:
      - sls: {{ tplroot }}.validate
{%-   endfor %}
{%- endif %}
