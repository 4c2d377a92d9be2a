{#- The Pacemaker alert agent of the reactor path (see files/alert/cinder_ha_alert) and its
    spool directory. The CIB alert object that calls it is declared with the cluster
    objects (crm.configured):
        alert cinder_ha_salt /usr/share/pacemaker/alerts/cinder_ha_alert select resources
            attributes cinder_ha_resources="<primitive_id> <vip_id>"
            to /var/lib/cinder-ha/alerts
-#}
cinder_ha_alert_agent:
  file.managed:
    - name: /usr/share/pacemaker/alerts/cinder_ha_alert
    - source: salt://cinder_ha/files/alert/cinder_ha_alert
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

cinder_ha_alert_spool:
  file.directory:
    - name: /var/lib/cinder-ha/alerts
    - user: hacluster
    - group: haclient
    - mode: '0750'
    - makedirs: True
