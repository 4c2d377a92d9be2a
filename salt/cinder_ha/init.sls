{#- salt '*' state.apply cinder_ha
    The OpenStack HA guide's "Highly available Block Storage API", on today's software:
      validate  the whole pillar, before anything changes
      agent     ocf:openstack:cinder-api on every node (guide step 1)
      config    cinder.conf keys on every node, legacy names migrated (step 3);
                cinder-api restarted through the cluster only if its config changed
      alerts    the Pacemaker alert agent and its spool (the reactor path)
      cluster   p_cinder-api + VIP, kept together, one CIB transaction (step 2)
      catalog   Block Storage endpoints in Keystone on the VIPs (step 4), then probed
    cluster and catalog change shared state: only the controller (see map.jinja) applies them.
    salt '*' state.apply cinder_ha.clean removes what this built (see clean.sls). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import check with context %}
include:
  - {{ tplroot }}.validate
{%- if check.valid %}
  - {{ tplroot }}.agent
  - {{ tplroot }}.config
  - {{ tplroot }}.cluster
  - {{ tplroot }}.catalog
{%- endif %}
