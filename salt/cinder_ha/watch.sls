{#- Configure the cinder_ha_watch minion engine (drift of cinder.conf, cluster alerts) on
    this minion. The engine starts with the minion: after the first change here, restart
    salt-minion once (a state cannot restart the minion that runs it reliably).

    Master side (once, then restart salt-master):
        signing_algorithm: PKCS1v15-SHA1
        reactor:
          - 'cinder_ha/*':
            - salt://cinder_ha/reactor/dispatch.sls
-#}
include:
  - cinder_ha.alerts

{%- set conf_path = salt['pillar.get']('cinder_ha:cinder_conf:path', '/etc/cinder/cinder.conf') %}
{%- set minion_d = salt['file.dirname'](salt['config.get']('conf_file') or '/etc/salt/minion') ~ '/minion.d' %}

cinder_ha_watch_engine:
  file.serialize:
    - name: {{ minion_d ~ '/cinder_ha_watch.conf' }}
    - serializer: yaml
    - makedirs: True
    - mode: '0644'
    - dataset:
        # the reactor acts only on events signed with this minion's key (README: trust model)
        minion_sign_messages: True
        engines:
          - cinder_ha_watch:
              paths:
                - {{ conf_path }}
              alert_spool: /var/lib/cinder-ha/alerts
    - require:
      - file: cinder_ha_alert_spool
