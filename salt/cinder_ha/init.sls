{#- salt '*' state.apply cinder_ha
    The OpenStack HA guide's "Highly available Block Storage API", on today's software:
      validate  the whole pillar, before anything changes
      agent     ocf:openstack:cinder-api on every node (guide step 1)
      config    cinder.conf keys on every node, legacy names migrated (step 3);
                cinder-api restarted through the cluster only if its config changed
      alerts    the Pacemaker alert agent and its spool (the reactor path)
      cluster   p_cinder-api + VIP, kept together, one CIB transaction (step 2)
      catalog   Block Storage endpoints in Keystone on the VIPs (step 4), then probed
    cluster and catalog change shared state: only the controller (cinder_ha.controller: the
    minion named by pillar cinder_ha:controller, else the Pacemaker DC) applies them.
    salt '*' state.apply cinder_ha.clean removes what this built (see clean.sls). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- set formula = salt["cinder_ha.formula_map"](tplroot, saltenv) %}
{%- set check, cinder_ha, is_controller = formula.check, formula.cinder_ha, formula.role.is_controller %}
{%- if check.valid and is_controller and "cinder_keystone.prefetch" in salt %}
{#- The catalog part's Keystone reads start now, while the rest renders and applies
    (cinder_keystone.prefetch; catalog.sls asks too, for a run of that part alone). #}
{%-   do salt["cinder_keystone.prefetch"](cinder_ha.catalog_services, cinder_ha.keystone.region) %}
{%- endif %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.agent
  - {{ tplroot }}.config
  - {{ tplroot }}.cluster
  - {{ tplroot }}.catalog
{%- endif %}
